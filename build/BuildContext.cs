using Cake.Core;
using Cake.Core.Diagnostics;
using TwoTower.Config;
using TwoTower.Pipeline;

namespace TwoTower.Build;

/// <summary>The Cake context plus what every task needs: the resolved config and the artifact store.</summary>
public sealed class BuildContext : ICakeContext, IPipelineLog
{
    readonly ICakeContext cake;

    public Cake.Core.IO.IFileSystem FileSystem => cake.FileSystem;
    public ICakeEnvironment Environment => cake.Environment;
    public Cake.Core.IO.IGlobber Globber => cake.Globber;
    public ICakeLog Log => cake.Log;
    public ICakeArguments Arguments => cake.Arguments;
    public Cake.Core.IO.IProcessRunner ProcessRunner => cake.ProcessRunner;
    public Cake.Core.IO.IRegistry Registry => cake.Registry;
    public Cake.Core.Tooling.IToolLocator Tools => cake.Tools;
    public ICakeDataResolver Data => cake.Data;
    public Cake.Core.Configuration.ICakeConfiguration Configuration => cake.Configuration;
    public Cake.Core.Tooling.IToolInstaller ToolInstaller => cake.ToolInstaller;
    public IServiceProvider ServiceProvider => cake.ServiceProvider;

    public PipelineConfig Config { get; }
    public ArtifactStore Store { get; }
    public bool Force { get; }
    public bool Resume { get; }

    readonly Dictionary<string, string> fingerprints = new();

    public BuildContext(ICakeContext context)
    {
        cake = context;
        var configPath = Argument("config") ?? "pipeline.yaml";
        Config = PipelineConfig.Load(configPath, context.Arguments.GetArguments("set"));
        var artifacts = Argument("artifacts") ?? "artifacts";
        if (File.Exists(artifacts))
            throw new PipelineError($"--artifacts={artifacts} is a file; expected a folder (it is created when absent)");
        Store = new ArtifactStore(artifacts);
        if (Config.IsEmptyFile)
            Warning($"{configPath} has no keys: every setting takes its default (pipeline.yaml lists them all)");
        Force = Flag("force");
        Resume = Flag("resume");
    }

    public string? Argument(string name) => Arguments.GetArguments(name).LastOrDefault();

    bool Flag(string name) => Argument(name) is { } v && v != "false";

    /// <summary>Whether the stage must run: forced, or its fingerprint or outputs differ from the manifest.</summary>
    public bool NeedsRun(Stage stage)
    {
        var fingerprint = Store.Fingerprint(stage, Config);
        fingerprints[stage.Name] = fingerprint;
        var upToDate = !Force && Store.IsUpToDate(stage.Name, fingerprint);
        if (upToDate)
            Info($"{stage.Name}: up to date ({Store.StageDir(stage.Name)})");
        else if (!Force && Store.ChangesSince(stage.Name, fingerprint) is { } changes)
            Info($"{stage.Name}: runs again, replacing {Store.StageDir(stage.Name)}: {changes}");
        return !upToDate;
    }

    public void RunStage(Stage stage) => Store.Run(stage, Config, this, fingerprints[stage.Name], Resume);

    public void Info(string message) => Log.Information(message);
    public void Warning(string message) => Log.Warning(message);
    public void Verbose(string message) => Log.Verbose(message);
}
