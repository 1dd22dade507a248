using TwoTower.Data;
using TwoTower.Stages;

namespace TwoTower.Build.Tasks;

// The data stages, in pipeline order: one file per stage family, since each task is a few lines of glue.

[TaskName("Synthesize")]
[TaskDescription("Writes the built-in H&M-shaped data when none of the configured files is there (never over files it did not write)")]
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
