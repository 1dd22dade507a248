using TwoTower.Config;
using TwoTower.Pipeline;

namespace TwoTower.Stages;

/// <summary>
/// The pipeline up to Evaluate in a store of its own, for the targets that run it many times with
/// other settings (Sweep's trials, Backtest's weeks): each stage is left as it is when up to date,
/// copied from another such store whose stage has the same fingerprint (the settings that differ do
/// not touch it), or run, resuming its checkpoint. A killed run therefore resumes where it stopped.
/// </summary>
public static class EvaluationRun
{
    /// <returns>Whether any stage was copied or computed (false: every stage was up to date).</returns>
    public static bool Ensure(ArtifactStore store, PipelineConfig config, IReadOnlyList<ArtifactStore> others, IPipelineLog log)
    {
        var computed = false;
        foreach (Stage stage in new Stage[] { new IngestStage(), new EncodeStage(), new NormalizeStage(), new TrainStage(), new BlendStage(), new EvaluateStage() })
        {
            var fingerprint = store.Fingerprint(stage, config);
            if (store.IsUpToDate(stage.Name, fingerprint))
                continue;
            computed = true;
            if (others.FirstOrDefault(o => store.TryAdopt(stage.Name, fingerprint, o)) is { } from)
            {
                log.Verbose($"{stage.Name} copied from {from.Root} (the same settings for it)");
                continue;
            }
            store.Run(stage, config, log, fingerprint, resume: store.HasCheckpoint(stage.Name));
        }
        return computed;
    }

    /// <summary>The folder, in `parent`, of the run whose validation (or tuning) days end `offsetDays` before the data's last day.</summary>
    public static string OffsetFolder(string parent, long offsetDays) => Path.Combine(parent, $"offset-{offsetDays:D3}");
}
