using System.Text.Json;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Stages;

/// <summary>
/// Normalize: for each normalized numeric column, the population mean and variance of the
/// training rows (Keras Normalization(axis=None).adapt), then (x − μ) / max(σ, ε). Missing values
/// (NaN) take the training mean. Raw columns pass through (missing → their training mean).
/// </summary>
public sealed class NormalizeStage : Stage
{
    public override string Name => "normalize";
    public override string CodeVersion => "normalize-3";
    public override IReadOnlyList<string> ConfigKeys => ["normalize", "features"];
    public override IReadOnlyList<string> Upstream => ["encode"];

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var epsilon = run.Config.Get(ConfigSchema.Normalize.Epsilon);
        var train = ColumnTable.ReadParquet(run.Input("encode", "train.parquet"));
        var val = ColumnTable.ReadParquet(run.Input("encode", "val.parquet"));
        var outTrain = new ColumnTable();
        var outVal = new ColumnTable();
        foreach (var column in features.CategoricalColumns)
        {
            outTrain.Add(column, train.Ints(column));
            outVal.Add(column, val.Ints(column));
        }
        var stats = new Dictionary<string, NormalizationStats>();
        foreach (var column in features.NumericColumns)
        {
            var s = NormalizationStats.Fit(train.Floats(column), epsilon);
            if (s.Count == 0)
                throw new PipelineError($"column '{column}' has no values in the training data");
            var normalize = features.NormalizedColumns.Contains(column);
            stats[column] = normalize ? s : s with { Std = 1, Variance = 1, Normalized = false };
            outTrain.Add(column, stats[column].Apply(train.Floats(column)));
            outVal.Add(column, stats[column].Apply(val.Floats(column)));
            if (normalize)
                run.Log.Info($"Normalize {column}: mean {s.Mean:G6}, std {Math.Sqrt(s.Variance):G6}");
        }
        if (train.Names.Contains(DataFiles.DayColumn))
        {
            outTrain.Add(DataFiles.DayColumn, train.Ints(DataFiles.DayColumn));
            outVal.Add(DataFiles.DayColumn, val.Ints(DataFiles.DayColumn));
        }
        for (var slot = 0; slot < (features.History?.Length ?? 0); slot++)
        {
            outTrain.Add(PurchaseHistory.SlotColumn(slot), train.Ints(PurchaseHistory.SlotColumn(slot)));
            outVal.Add(PurchaseHistory.SlotColumn(slot), val.Ints(PurchaseHistory.SlotColumn(slot)));
        }
        File.WriteAllText(run.Output(NormalizationStats.FileName), JsonSerializer.Serialize(stats, new JsonSerializerOptions { WriteIndented = true }));
        outTrain.WriteParquet(run.Output("train.parquet"));
        outVal.WriteParquet(run.Output("val.parquet"));
    }
}
