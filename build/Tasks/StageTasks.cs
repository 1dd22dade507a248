using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Build.Tasks;

/// <summary>A task that runs one cached stage: skipped ("up to date") when its fingerprint is unchanged.</summary>
public abstract class StageTask<TStage> : FrostingTask<BuildContext> where TStage : Stage, new()
{
    readonly TStage stage = new();
    public override bool ShouldRun(BuildContext context) => context.NeedsRun(stage);
    public override void Run(BuildContext context) => context.RunStage(stage);
}

[TaskName("Synthesize")]
[TaskDescription("Writes the built-in H&M-shaped data when the configured files are absent")]
public sealed class SynthesizeTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) => Synthesizer.EnsureData(context.Config, context);
}

[TaskName("Ingest")]
[TaskDescription("CSV → columnar Parquet with the configured feature columns")]
[IsDependentOn(typeof(SynthesizeTask))]
public sealed class IngestTask : StageTask<IngestStage>;

[TaskName("Encode")]
[TaskDescription("Vocabularies (0 = out of vocabulary) and integer ids")]
[IsDependentOn(typeof(IngestTask))]
public sealed class EncodeTask : StageTask<EncodeStage>;

[TaskName("Normalize")]
[TaskDescription("Mean/variance normalization of the numeric features")]
[IsDependentOn(typeof(EncodeTask))]
public sealed class NormalizeTask : StageTask<NormalizeStage>;

[TaskName("Train")]
[TaskDescription("Trains the two-tower model (in-batch softmax, AdamW); --resume continues from the last checkpoint")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class TrainTask : StageTask<TwoTower.Model.TrainStage>;

[TaskName("Evaluate")]
[TaskDescription("Full-catalogue top-k accuracy of the model beside popularity, buy-again and random baselines")]
[IsDependentOn(typeof(TrainTask))]
public sealed class EvaluateTask : StageTask<TwoTower.Evaluation.EvaluateStage>;

[TaskName("Benchmark")]
[TaskDescription("Times Ingest, one training epoch and the full evaluation (median of --repeats runs, default 3)")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class BenchmarkTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) =>
        TwoTower.Benchmarks.Run(context.Config, context.Store, context, int.Parse(context.Argument("repeats") ?? "3"));
}

[TaskName("Package")]
[TaskDescription("The serving bundle: weights, vocabularies, candidate embeddings, USearch index, ONNX towers, OpenSearch export")]
[IsDependentOn(typeof(EvaluateTask))]
public sealed class PackageTask : StageTask<TwoTower.Serving.PackageStage>;

[TaskName("GpuCheck")]
[TaskDescription("On a GPU machine: ILGPU ops against SIMD, per-op step times, an epoch and the evaluation, 1M×105k rank counting; prints a table")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class GpuCheckTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) => TwoTower.GpuCheck.Run(context.Config, context.Store, context);
}
