using TwoTower.Pipeline;

namespace TwoTower.Build.Tasks;

/// <summary>A task that runs one cached stage: skipped ("up to date") when its fingerprint is unchanged.</summary>
public abstract class StageTask<TStage> : FrostingTask<BuildContext> where TStage : Stage, new()
{
    readonly TStage stage = new();
    public override bool ShouldRun(BuildContext context) => context.NeedsRun(stage);
    public override void Run(BuildContext context) => context.RunStage(stage);
}
