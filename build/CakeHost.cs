using System.Reflection;
using Cake.Core;
using Cake.Core.Configuration;
using Cake.Core.Diagnostics;
using Cake.Core.IO;
using Cake.Core.Packaging;
using Cake.Core.Tooling;

namespace TwoTower.Build;

// A thin host in the style of Cake.Frosting (not restorable from this project's feed): typed
// task classes with [TaskName] and [IsDependentOn], run by Cake's own CakeEngine, execution
// strategy and report printer. Switching to Cake.Frosting later means deleting this file and
// referencing the package: the task classes already have Frosting's shape.

[AttributeUsage(AttributeTargets.Class)]
public sealed class TaskNameAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
public sealed class IsDependentOnAttribute(Type task) : Attribute
{
    public Type Task { get; } = task;
}

[AttributeUsage(AttributeTargets.Class)]
public sealed class TaskDescriptionAttribute(string description) : Attribute
{
    public string Description { get; } = description;
}

public abstract class FrostingTask<TContext> where TContext : ICakeContext
{
    public virtual bool ShouldRun(TContext context) => true;
    public abstract void Run(TContext context);
}

public static class CakeHost
{
    /// <summary>Builds the context, registers every task class of this assembly and runs the target.</summary>
    public static async Task<int> RunAsync(string[] args, Func<ICakeContext, BuildContext> createContext, string defaultTarget)
    {
        ILookup<string, string> arguments;
        Verbosity verbosity;
        try
        {
            arguments = CommandLine.Parse(args);
            verbosity = CommandLine.ParseVerbosity(arguments["verbosity"].LastOrDefault());
        }
        catch (PipelineError e)
        {
            await Console.Error.WriteLineAsync("error: " + e.Message);
            return 1;
        }
        IConsole console = PlainConsole.Wanted ? new PlainConsole() : new CakeConsole(new CakeEnvironment(new CakePlatform(), new CakeRuntime()));
        var log = new CakeBuildLog(console, verbosity);

        var tasks = typeof(CakeHost).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && t.GetCustomAttribute<TaskNameAttribute>() != null)
            .ToDictionary(t => t, t => t.GetCustomAttribute<TaskNameAttribute>()!.Name);
        var target = arguments["target"].LastOrDefault() ?? defaultTarget;
        var names = tasks.Values.Order().ToArray();
        var match = names.FirstOrDefault(n => string.Equals(n, target, StringComparison.OrdinalIgnoreCase));
        if (match is null)
        {
            await Console.Error.WriteLineAsync($"error: unknown target '{target}'. Targets: {string.Join(", ", names)}");
            return 1;
        }

        var upToDate = new HashSet<string>();
        try
        {
            var context = createContext(CreateCakeContext(arguments, log));
            var engine = new CakeEngine(new CakeDataService(), log);
            foreach (var (type, name) in tasks)
            {
                var task = (FrostingTask<BuildContext>)Activator.CreateInstance(type)!;
                var builder = engine.RegisterTask(name);
                var description = type.GetCustomAttribute<TaskDescriptionAttribute>()?.Description;
                if (description != null)
                    builder.Description(description);
                foreach (var dependency in type.GetCustomAttributes<IsDependentOnAttribute>())
                    builder.IsDependentOn(tasks[dependency.Task]);
                // Not Cake's WithCriteria: Cake refuses to run a target whose criteria skip it, and an
                // up-to-date target is a success, not an error.
                builder.Does(() =>
                {
                    if (task.ShouldRun(context))
                        task.Run(context);
                    else
                        upToDate.Add(name);
                });
            }
            var printer = new CakeReportPrinter(console, context);
            var report = await engine.RunTargetAsync(context, new DefaultExecutionStrategy(log, printer),
                new ExecutionSettings().SetTarget(match));
            WriteReport(report, upToDate);
            return 0;
        }
        catch (Exception e)
        {
            // Cake wraps a task's exception in a CakeReportException; the cause is what the user needs.
            var cause = e is CakeReportException && e.InnerException != null ? e.InnerException : e;
            if (EnvironmentMessage(cause) is { } message)
                await Console.Error.WriteLineAsync("error: " + message);
            else if (cause is OperationCanceledException)
                await Console.Error.WriteLineAsync("cancelled");
            else
                await Console.Error.WriteLineAsync(verbosity >= Verbosity.Diagnostic
                    ? "internal error: " + cause
                    : $"internal error: {cause.GetType().Name}: {cause.Message} (--verbosity=diagnostic shows where)");
            return cause is OperationCanceledException ? 130 : 1;
        }
    }

    /// <summary>
    /// What the user can act on, in one line: a <see cref="PipelineError"/>, or the machine refusing
    /// (permissions, a full disk, a path of the wrong kind, a port in use). Null for anything else:
    /// that is a bug, reported as an internal error.
    /// </summary>
    static string? EnvironmentMessage(Exception cause) => cause switch
    {
        PipelineError => cause.Message,
        UnauthorizedAccessException => $"{cause.Message} Check the permissions of that path, or point --artifacts / data.dir elsewhere.",
        IOException { HResult: var code } when (code & 0xFFFF) == 28 || cause.Message.Contains("No space left", StringComparison.Ordinal) =>
            $"the disk is full ({cause.Message.TrimEnd('.')}). Free some space and rerun: nothing half-written was kept.",
        IOException when cause.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) =>
            $"{cause.Message.TrimEnd('.')}. Stop what uses that port, or choose another with --set serve.port=<port>.",
        IOException or DirectoryNotFoundException => cause.Message,
        _ => null,
    };

    /// <summary>Cake's report table, with "Up to date" for the stages that were skipped by their cache.</summary>
    static void WriteReport(CakeReport report, IReadOnlySet<string> upToDate)
    {
        Console.WriteLine();
        Console.WriteLine($"{"Task",-30}{"Duration",-20}Status");
        Console.WriteLine(new string('-', 62));
        foreach (var entry in report)
        {
            var status = upToDate.Contains(entry.TaskName) ? "Up to date"
                : entry.ExecutionStatus == CakeTaskExecutionStatus.Executed ? "Succeeded" : entry.ExecutionStatus.ToString();
            Console.WriteLine($"{entry.TaskName,-30}{entry.Duration:hh\\:mm\\:ss\\.fff}        {status}");
        }
        Console.WriteLine(new string('-', 62));
        Console.WriteLine($"{"Total:",-30}{TimeSpan.FromTicks(report.Sum(e => e.Duration.Ticks)):hh\\:mm\\:ss\\.fff}");
    }

    static CakeContext CreateCakeContext(ILookup<string, string> arguments, ICakeLog log)
    {
        var fileSystem = new FileSystem();
        var environment = new CakeEnvironment(new CakePlatform(), new CakeRuntime());
        var globber = new Globber(fileSystem, environment);
        var configuration = new CakeConfiguration(new Dictionary<string, string>());
        var tools = new ToolLocator(environment, new ToolRepository(environment),
            new ToolResolutionStrategy(fileSystem, environment, globber, configuration, log));
        return new CakeContext(fileSystem, environment, globber, log, new CakeArguments(arguments),
            new ProcessRunner(fileSystem, environment, log, tools, configuration), new WindowsRegistry(), tools,
            new CakeDataService(), configuration, new NoToolInstaller(), new NoServices());
    }

    /// <summary>This pipeline installs no tools at run time.</summary>
    sealed class NoToolInstaller : IToolInstaller
    {
        public IEnumerable<FilePath> Install(PackageReference tool) =>
            throw new PipelineError($"installing tools ({tool.Package}) is not supported by this pipeline");
    }

    sealed class NoServices : IServiceProvider
    {
        public object? GetService(Type serviceType) => null;
    }
}
