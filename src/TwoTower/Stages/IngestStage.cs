using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Analysis;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Stages;

/// <summary>
/// Ingest: the configured CSVs → artifacts/ingest/{train,val}.parquet with only the configured
/// feature columns: categorical columns as int codes into levels.&lt;split&gt;.&lt;column&gt;.json (the
/// column's distinct strings in first-seen order), numeric columns as float; plus a summary.
/// </summary>
public sealed class IngestStage : Stage
{
    public override string Name => "ingest";
    public override string CodeVersion => "ingest-5";

    /// <summary>Not features.query.history: Encode builds the history, so trials and runs that differ only there share one Ingest.</summary>
    public override IReadOnlyList<string> ConfigKeys =>
    [
        "data", "raw", "features.candidate", "features.query.id", "features.query.embedded", "features.query.one_hot", "features.query.numeric",
        "features.query.raw",
    ];

    public override IEnumerable<string> InputFiles(PipelineConfig config) => DataFiles.All(config);

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var watch = Stopwatch.StartNew();
        if (DataFiles.IsRawLayout(run.Config))
        {
            var (train, val) = RawHm.Read(run.Config, features, run.Log);
            run.Log.Verbose($"Ingest: raw files read, joined and split in {watch.Elapsed.TotalSeconds:F1} s");
            CheckNegatives(run, DataFiles.Transactions(run.Config), "train", train.Table, features);
            CheckNegatives(run, DataFiles.Transactions(run.Config), "val", val.Table, features);
            WriteSplits(run, DataFiles.Transactions(run.Config), train.Table, train.Levels, DataFiles.IsTuningSplit(run.Config) ? null : (val.Table, val.Levels), features);
        }
        else
        {
            var missingIsError = run.Config.Get(ConfigSchema.Data.MissingNumeric) == "error";
            (ColumnTable Table, IReadOnlyDictionary<string, IReadOnlyList<string>> Levels) Read(string split, string path)
            {
                var result = CsvTransactions.Read(path, features.CategoricalColumns, features.NumericColumns, missingIsError);
                foreach (var (column, count) in result.MissingCounts.Where(m => m.Value > 0))
                    run.Log.Warning($"{path}: {count:N0} of {result.Table.RowCount:N0} rows have no '{column}'; imputing the training mean");
                foreach (var (column, count) in result.InvalidTextRows.Where(m => m.Value > 0))
                    run.Log.Warning($"{path}: {count:N0} rows of '{column}' hold bytes that are not UTF-8 (read as \uFFFD); " +
                                    "save the file as UTF-8 to keep those values apart");
                CheckNegatives(run, path, split, result.Table, features);
                run.Log.Info($"Ingest {split}: {result.Table.RowCount:N0} rows from {path}");
                return (result.Table, result.Levels);
            }
            var train = Read("train", DataFiles.TrainCsv(run.Config));
            WriteSplits(run, DataFiles.TrainCsv(run.Config), train.Table, train.Levels,
                DataFiles.IsTuningSplit(run.Config) ? null : Read("val", DataFiles.ValCsv(run.Config)), features);
        }
        run.Log.Verbose($"Ingest took {watch.Elapsed.TotalSeconds:F2} s");
    }

    /// <summary>
    /// data.negative_numeric: negative values of the normalized numeric features (ages, prices) are
    /// counted and warned about, refused, or clipped to 0. Raw features (month_sin) may be negative.
    /// </summary>
    static void CheckNegatives(StageRun run, string path, string split, ColumnTable table, FeatureSet features)
    {
        var policy = run.Config.Get(ConfigSchema.Data.NegativeNumeric);
        foreach (var column in features.NormalizedColumns)
        {
            var values = table.Floats(column);
            var first = Array.FindIndex(values, v => v < 0);
            if (first < 0)
                continue;
            var count = values.Count(v => v < 0);
            var what = $"{path} ({split}): {count:N0} rows have a negative '{column}' (the first: {values[first]:G6})";
            if (policy == "error")
                throw run.Config.ErrorAt(ConfigSchema.Data.NegativeNumeric.Key, $"{what}; 'warn' or 'clip' (to 0) accept them");
            if (policy == "clip")
            {
                for (var r = 0; r < values.Length; r++)
                    values[r] = Math.Max(values[r], 0);
            }
            run.Log.Warning(what + (policy == "clip" ? "; clipped to 0 (data.negative_numeric)" : "; kept as they are (data.negative_numeric)"));
        }
    }

    /// <summary>
    /// Writes the training and validation splits; with data.split: tuning (no validation data given)
    /// the validation split is the training rows of the last data.tuning_days days, and the training
    /// split the rows before them. The training split's levels are its own (a customer or article
    /// first seen in the tuning days is unknown to the model, as a new one is in the validation
    /// period); the tuning rows keep the whole training data's levels, looked up by value in Encode.
    /// </summary>
    static void WriteSplits(StageRun run, string trainPath, ColumnTable train, IReadOnlyDictionary<string, IReadOnlyList<string>> levels,
        (ColumnTable Table, IReadOnlyDictionary<string, IReadOnlyList<string>> Levels)? val, FeatureSet features)
    {
        if (val is { } given)
        {
            Write(run, "train", train, levels, features);
            Write(run, "val", given.Table, given.Levels, features);
            return;
        }
        if (!train.Names.Contains(DataFiles.DayColumn))
            throw run.Config.ErrorAt(ConfigSchema.Data.Split.Key, $"'tuning' splits the training data by date, and {trainPath} has no purchase dates (t_dat)");
        var days = train.Ints(DataFiles.DayColumn);
        var firstTuningDay = days.Max() - (int)run.Config.Get(ConfigSchema.Data.TuningDays) + 1;
        var before = Enumerable.Range(0, days.Length).Where(r => days[r] < firstTuningDay).ToArray();
        var tuning = Enumerable.Range(0, days.Length).Where(r => days[r] >= firstTuningDay).ToArray();
        if (before.Length == 0)
            throw run.Config.ErrorAt(ConfigSchema.Data.TuningDays.Key, $"every row of {trainPath} falls in the last {run.Config.Get(ConfigSchema.Data.TuningDays)} days: nothing is left to train on");
        run.Log.Info($"Ingest: data.split tuning: the {tuning.Length:N0} training rows from {DateOnly.FromDayNumber(firstTuningDay):yyyy-MM-dd} on are the " +
                     $"validation set, the {before.Length:N0} before them the training set; the configured validation data is not used");
        var trainPart = train.SelectRows(before);
        Write(run, "train", trainPart, levels.ToDictionary(l => l.Key, l => OwnLevels(trainPart.Ints(l.Key), l.Value)), features);
        Write(run, "val", train.SelectRows(tuning), levels, features);
    }

    /// <summary>Recodes a column to the levels its rows use, in first-seen order; returns those levels.</summary>
    static IReadOnlyList<string> OwnLevels(int[] codes, IReadOnlyList<string> levels)
    {
        var newCode = Enumerable.Repeat(-1, levels.Count).ToArray();
        var kept = new List<string>();
        for (var r = 0; r < codes.Length; r++)
        {
            if (newCode[codes[r]] < 0)
            {
                newCode[codes[r]] = kept.Count;
                kept.Add(levels[codes[r]]);
            }
            codes[r] = newCode[codes[r]];
        }
        return kept;
    }

    static void Write(StageRun run, string split, ColumnTable table, IReadOnlyDictionary<string, IReadOnlyList<string>> levels, FeatureSet features)
    {
        var watch = Stopwatch.StartNew();
        table.WriteParquet(run.Output(split + ".parquet"));
        foreach (var (column, values) in levels)
            ArtifactStore.WriteAtomic(run.Output(Levels.FileName(split, column)), JsonSerializer.Serialize(values));
        var written = watch.Elapsed.TotalSeconds;
        File.WriteAllText(run.Output(split + ".summary.txt"), Summary(table, levels, features));
        run.Log.Verbose($"Ingest {split}: Parquet and levels written in {written:F1} s, summary in {watch.Elapsed.TotalSeconds - written:F1} s");
    }

    /// <summary>Distinct counts of the categorical columns and a description of the numeric ones.</summary>
    static string Summary(ColumnTable table, IReadOnlyDictionary<string, IReadOnlyList<string>> levels, FeatureSet features)
    {
        var lines = new List<string> { $"rows: {table.RowCount}" };
        foreach (var c in features.CategoricalColumns)
            lines.Add($"{c}: {levels[c].Count} distinct");
        if (features.NumericColumns.Count > 0)
        {
            var frame = new DataFrame(features.NumericColumns.Select(c =>
                (DataFrameColumn)new SingleDataFrameColumn(c, table.Floats(c).Select(v => float.IsFinite(v) ? v : (float?)null))).ToArray());
            lines.Add(frame.Description().ToString());
        }
        return string.Join('\n', lines) + "\n";
    }
}
