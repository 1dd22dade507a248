using TwoTower.Config;

namespace TwoTower.Pipeline;

/// <summary>
/// One cached step of the pipeline. It declares what its output depends on (config keys, upstream
/// stages, input files) and writes its outputs into <see cref="StageRun.OutputDir"/>; the
/// <see cref="ArtifactStore"/> decides whether it must run and publishes its folder atomically.
/// </summary>
public abstract class Stage
{
    /// <summary>Folder name under artifacts/, e.g. "ingest".</summary>
    public abstract string Name { get; }

    /// <summary>Bump when the stage's code changes what it writes: invalidates old caches.</summary>
    public abstract string CodeVersion { get; }

    /// <summary>Config keys (or section prefixes) whose values the outputs depend on.</summary>
    public abstract IReadOnlyList<string> ConfigKeys { get; }

    /// <summary>Stages whose outputs this one reads; their fingerprints enter this one's.</summary>
    public virtual IReadOnlyList<string> Upstream => [];

    /// <summary>Files outside artifacts/ whose contents this stage reads.</summary>
    public virtual IEnumerable<string> InputFiles(PipelineConfig config) => [];

    /// <summary>Whether an interrupted run may continue from its partial folder (Train's checkpoints).</summary>
    public virtual bool CanResume => false;

    public abstract void Execute(StageRun run);
}

/// <summary>What a running stage sees: the config, a log, where to write, where its inputs are.</summary>
public sealed class StageRun(PipelineConfig config, IPipelineLog log, ArtifactStore store, string outputDir, bool resuming)
{
    public PipelineConfig Config { get; } = config;
    public IPipelineLog Log { get; } = log;
    public ArtifactStore Store { get; } = store;

    /// <summary>The stage's partial folder; published under the stage's name when Execute returns.</summary>
    public string OutputDir { get; } = outputDir;

    /// <summary>True when the partial folder of an interrupted run was kept (only for stages that can resume).</summary>
    public bool Resuming { get; } = resuming;

    public string Output(string fileName) => Path.Combine(OutputDir, fileName);

    public string Input(string stage, string fileName) => Path.Combine(Store.StageDir(stage), fileName);
}

public interface IPipelineLog
{
    void Info(string message);
    void Warning(string message);
    void Verbose(string message);
}
