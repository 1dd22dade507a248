using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Stages;

/// <summary>
/// Train: the two-tower model on artifacts/normalize/train.parquet → artifacts/train/:
/// model.safetensors (both towers' weights), config.yaml (the resolved config), history.json
/// (per epoch: loss per example and per batch, seconds, rows/s) and checkpoint.safetensors
/// (weights + Adam moments after the last complete epoch; --resume continues from it). With early
/// stopping, the best epoch's weights are kept in best.safetensors while training and become
/// model.safetensors at the end.
/// </summary>
public sealed class TrainStage : Stage
{
    public override string Name => "train";
    public override string CodeVersion => "train-1";
    public override IReadOnlyList<string> ConfigKeys => ["seed", "threads", "accelerator", "features", "model", "train", "evaluate.ks"];
    public override IReadOnlyList<string> Upstream => ["normalize"];
    public override bool CanResume => true;

    const string BestWeightsFile = "best.safetensors";

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var features = FeatureSet.From(config);
        var data = TrainingColumns.Read(run.Store, "train");
        var model = TwoTowerModel.Create(config, TrainedModel.VocabularySizes(run.Store, features));
        var options = TrainOptions.From(config);
        var history = new List<EpochStats>();
        var checkpoint = run.Output(TrainedModel.CheckpointFile);
        var firstEpoch = 1;
        var startStep = 0;
        if (run.Resuming && File.Exists(checkpoint))
        {
            var meta = model.LoadCheckpoint(checkpoint);
            startStep = int.Parse(meta["step"], CultureInfo.InvariantCulture);
            history = JsonSerializer.Deserialize<List<EpochStats>>(meta["history"])!;
            firstEpoch = history.Count + 1;
            run.Log.Info($"Resuming after epoch {history.Count} (step {startStep}) from {checkpoint}");
        }
        else
        {
            model.Initialize(config.Get(ConfigSchema.Seed));
        }
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, run.Log);
        using var trainer = new Trainer(model, kernels, options, data, features.CandidateId, startStep);
        var parameters = model.Variables.Sum(v => (long)v.Value.Length);
        run.Log.Info($"Training on {data.RowCount:N0} rows, {trainer.BatchesPerEpoch} batches of {options.BatchSize}, " +
                     $"{parameters:N0} parameters, epochs {firstEpoch}..{options.Epochs}");

        var validateEvery = (int)config.Get(ConfigSchema.Train.ValidateEvery);
        var val = validateEvery > 0 ? TrainingColumns.Read(run.Store, "val") : null;
        var ks = config.Get(ConfigSchema.Evaluate.Ks).Select(k => (int)k).Order().ToArray();
        var stopping = EarlyStopping.From(config);
        var best = run.Output(BestWeightsFile);
        for (var epoch = firstEpoch; epoch <= options.Epochs; epoch++)
        {
            if (stopping != null && stopping.ShouldStop(history))
                break;
            var stats = RunEpochWithProgress(trainer, epoch, options.Epochs, run.Log);
            if (val != null && epoch % validateEvery == 0)
            {
                var ranks = CatalogueRanks.Compute(model, trainer.Kernels, data, val, features, out _);
                var metrics = RankMetrics.Compute(ranks, ks);
                stats = stats with { ValidationHitAt = new Dictionary<int, double>(metrics.HitAt), ValidationMrr = metrics.Mrr };
                run.Log.Info($"Epoch {epoch}: validation " + string.Join(", ", ks.Select(k => $"hit@{k} {metrics.HitAt[k]:F4}")) +
                             $", MRR {metrics.Mrr:F4}");
            }
            history.Add(stats);
            if (stopping != null && stopping.BestEpoch(history) == epoch)
                model.SaveWeights(best, new Dictionary<string, string> { ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture) });
            run.Log.Info($"Epoch {epoch}/{options.Epochs}: loss {stats.LossPerExample:F4} per example " +
                         $"({stats.LossPerBatch:F1} per batch), {stats.Seconds:F2} s, {stats.RowsPerSecond:N0} rows/s");
            model.SaveCheckpoint(checkpoint, new Dictionary<string, string>
            {
                ["step"] = trainer.Step.ToString(CultureInfo.InvariantCulture),
                ["history"] = JsonSerializer.Serialize(history),
            });
        }

        if (stopping != null && File.Exists(best))
        {
            model.LoadWeights(best);
            File.Delete(best);
            run.Log.Info($"Early stopping on {stopping.Metric}: keeping the weights of epoch {stopping.BestEpoch(history)}" +
                         (stopping.ShouldStop(history) ? $", stopped after epoch {history[^1].Epoch}" : ""));
        }
        model.SaveWeights(run.Output(TrainedModel.WeightsFile), new Dictionary<string, string> { ["format"] = "twotower-1" });
        ArtifactStore.WriteAtomic(run.Output(TrainedModel.ConfigFile), config.ToYaml());
        ArtifactStore.WriteAtomic(run.Output(TrainedModel.HistoryFile), JsonSerializer.Serialize(history, new JsonSerializerOptions { WriteIndented = true }));
    }

    static bool Interactive =>
        !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null && AnsiConsole.Profile.Capabilities.Interactive;

    static EpochStats RunEpochWithProgress(Trainer trainer, int epoch, int epochs, IPipelineLog log)
    {
        if (Interactive)
        {
            EpochStats? result = null;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"epoch {epoch}/{epochs}", maxValue: trainer.BatchesPerEpoch);
                    var started = DateTime.UtcNow;
                    result = trainer.RunEpoch(epoch, (step, steps, loss) =>
                    {
                        task.Value = step;
                        var rate = step * 1.0 / Math.Max(1e-9, (DateTime.UtcNow - started).TotalSeconds);
                        task.Description = $"epoch {epoch}/{epochs} loss {loss:F3} ({rate:F0} batches/s)";
                    });
                });
            return result!;
        }
        var last = DateTime.UtcNow;
        return trainer.RunEpoch(epoch, (step, steps, loss) =>
        {
            if ((DateTime.UtcNow - last).TotalSeconds < 10 || step == steps)
                return;
            last = DateTime.UtcNow;
            log.Info($"  epoch {epoch}/{epochs}: step {step}/{steps}, loss {loss:F4} per example so far");
        });
    }
}
