using TwoTower.Benchmarks;

namespace TwoTower.Build.Tasks;

// Measurements: they read the artifacts and print tables; they write nothing.

[TaskName("Benchmark")]
[TaskDescription("Times Ingest, one training epoch and the full evaluation (median of --repeats runs, default 3)")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class BenchmarkTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) =>
        PipelineBenchmark.Run(context.Config, context.Store, context, CommandLine.PositiveInt("repeats", context.Argument("repeats"), 3));
}

[TaskName("BenchmarkServing")]
[TaskDescription("Latency p50/p99 of the query tower, the index, exact scoring and the HTTP service (--rate=1000 requests/s, --seconds=5)")]
[IsDependentOn(typeof(PackageTask))]
public sealed class BenchmarkServingTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) =>
        ServingBenchmark.Run(context.Config, context.Store.StageDir("package"), context,
            CommandLine.PositiveInt("rate", context.Argument("rate"), 1000),
            CommandLine.PositiveNumber("seconds", context.Argument("seconds"), 5));
}

[TaskName("GpuCheck")]
[TaskDescription("On a GPU machine: ILGPU ops against SIMD, per-op step times, an epoch and the evaluation, 1M×105k rank counting; prints a table")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class GpuCheckTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) => GpuCheck.Run(context.Config, context.Store, context);
}
