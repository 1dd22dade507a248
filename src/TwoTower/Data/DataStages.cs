using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Analysis;
using TwoTower.Config;
using TwoTower.Pipeline;

namespace TwoTower.Data;

/// <summary>
/// Ingest: the configured CSVs → artifacts/ingest/{train,val}.parquet with only the configured
/// feature columns: categorical columns as int codes into levels.&lt;split&gt;.&lt;column&gt;.json (the
/// column's distinct strings in first-seen order), numeric columns as float; plus a summary.
/// </summary>
public sealed class IngestStage : Stage
{
    public override string Name => "ingest";
    public override string CodeVersion => "ingest-3";

    public static string LevelsFile(string split, string column) => $"levels.{split}.{column}.json";
    public override IReadOnlyList<string> ConfigKeys => ["data", "features"];

    public static string TrainCsv(PipelineConfig c) => Path.Combine(c.Str("data.dir"), c.Str("data.train_file"));
    public static string ValCsv(PipelineConfig c) => Path.Combine(c.Str("data.dir"), c.Str("data.val_file"));

    public override IEnumerable<string> InputFiles(PipelineConfig config) =>
        config.Str("data.format") == "hm_raw"
            ? [RawHm.TransactionsPath(config), RawHm.CustomersPath(config), RawHm.ArticlesPath(config)]
            : [TrainCsv(config), ValCsv(config)];

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var watch = Stopwatch.StartNew();
        if (run.Config.Str("data.format") == "hm_raw")
        {
            var (train, val) = RawHm.Read(run.Config, features, run.Log);
            run.Log.Verbose($"Ingest: raw files read, joined and split in {watch.Elapsed.TotalSeconds:F1} s");
            Write(run, "train", train.Table, train.Levels, features);
            Write(run, "val", val.Table, val.Levels, features);
        }
        else
        {
            var missingIsError = run.Config.Str("data.missing_numeric") == "error";
            foreach (var (split, path) in new[] { ("train", TrainCsv(run.Config)), ("val", ValCsv(run.Config)) })
            {
                var result = CsvTransactions.Read(path, features.CategoricalColumns, features.NumericColumns, missingIsError);
                foreach (var (column, count) in result.MissingCounts.Where(m => m.Value > 0))
                    run.Log.Warning($"{path}: {count:N0} of {result.Table.RowCount:N0} rows have no '{column}'; imputing the training mean");
                Write(run, split, result.Table, result.Levels, features);
                run.Log.Info($"Ingest {split}: {result.Table.RowCount:N0} rows from {path}");
            }
        }
        run.Log.Verbose($"Ingest took {watch.Elapsed.TotalSeconds:F2} s");
    }

    static void Write(StageRun run, string split, ColumnTable table, IReadOnlyDictionary<string, IReadOnlyList<string>> levels, FeatureSet features)
    {
        var watch = Stopwatch.StartNew();
        table.WriteParquet(run.Output(split + ".parquet"));
        foreach (var (column, values) in levels)
            ArtifactStore.WriteAtomic(run.Output(LevelsFile(split, column)), JsonSerializer.Serialize(values));
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

/// <summary>
/// Encode: a vocabulary per categorical column (Keras StringLookup, mask_token=None): the distinct
/// training values in first-seen order get 1..n, index 0 is the single out-of-vocabulary slot.
/// The training levels are already in first-seen order, so a training code c becomes id c + 1;
/// validation levels are looked up in the vocabulary. Writes vocab.&lt;column&gt;.json and
/// {train,val}.parquet with the ids.
/// </summary>
public sealed class EncodeStage : Stage
{
    public override string Name => "encode";
    public override string CodeVersion => "encode-2";
    public override IReadOnlyList<string> ConfigKeys => ["features"];
    public override IReadOnlyList<string> Upstream => ["ingest"];

    public static string VocabFile(string column) => $"vocab.{column}.json";

    /// <summary>The vocabulary of a column from a folder holding vocab.&lt;column&gt;.json (artifacts/encode or a package).</summary>
    public static Vocabulary ReadVocabulary(string dir, string column) =>
        new(JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(dir, VocabFile(column))))!);

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var train = ColumnTable.ReadParquet(run.Input("ingest", "train.parquet"));
        var val = ColumnTable.ReadParquet(run.Input("ingest", "val.parquet"));
        var encodedTrain = new ColumnTable();
        var encodedVal = new ColumnTable();
        string[] Levels(string split, string column) =>
            JsonSerializer.Deserialize<string[]>(File.ReadAllText(run.Input("ingest", IngestStage.LevelsFile(split, column))))!;
        foreach (var column in features.CategoricalColumns)
        {
            var vocabulary = new Vocabulary(Levels("train", column));
            File.WriteAllText(run.Output(VocabFile(column)), JsonSerializer.Serialize(vocabulary.Values));
            encodedTrain.Add(column, Recode(train.Ints(column), Enumerable.Range(1, vocabulary.Count).ToArray()));
            var encoded = Recode(val.Ints(column), Levels("val", column).Select(v => vocabulary[v]).ToArray());
            encodedVal.Add(column, encoded);
            var unseen = encoded.Count(i => i == Vocabulary.OutOfVocabulary);
            run.Log.Info($"Encode {column}: {vocabulary.Count:N0} values; {unseen:N0} validation rows out of vocabulary");
        }
        foreach (var column in features.NumericColumns)
        {
            encodedTrain.Add(column, train.Floats(column));
            encodedVal.Add(column, val.Floats(column));
        }
        encodedTrain.WriteParquet(run.Output("train.parquet"));
        encodedVal.WriteParquet(run.Output("val.parquet"));
    }

    /// <summary>ids[r] = idOfCode[codes[r]].</summary>
    static int[] Recode(int[] codes, int[] idOfCode)
    {
        var ids = new int[codes.Length];
        for (var r = 0; r < ids.Length; r++)
            ids[r] = idOfCode[codes[r]];
        return ids;
    }
}

/// <summary>
/// Normalize: for each normalized numeric column, the population mean and variance of the
/// training rows (Keras Normalization(axis=None).adapt), then (x − μ) / max(σ, ε). Missing values
/// (NaN) take the training mean. Raw columns pass through (missing → their training mean).
/// </summary>
public sealed class NormalizeStage : Stage
{
    public override string Name => "normalize";
    public override string CodeVersion => "normalize-1";
    public override IReadOnlyList<string> ConfigKeys => ["normalize", "features"];
    public override IReadOnlyList<string> Upstream => ["encode"];

    public const string StatsFile = "normalization.json";

    /// <summary>The statistics from a folder holding normalization.json (artifacts/normalize or a package).</summary>
    public static Dictionary<string, NormalizationStats> ReadStats(string dir) =>
        JsonSerializer.Deserialize<Dictionary<string, NormalizationStats>>(File.ReadAllText(Path.Combine(dir, StatsFile)))!;

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var epsilon = run.Config.Float("normalize.epsilon");
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
        File.WriteAllText(run.Output(StatsFile), JsonSerializer.Serialize(stats, new JsonSerializerOptions { WriteIndented = true }));
        outTrain.WriteParquet(run.Output("train.parquet"));
        outVal.WriteParquet(run.Output("val.parquet"));
    }
}
