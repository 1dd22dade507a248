using System.Text.Json;
using TwoTower.Data;
using TwoTower.Pipeline;
using TwoTower.Retrieval;

namespace TwoTower.Stages;

/// <summary>
/// Encode: a vocabulary per categorical column (Keras StringLookup, mask_token=None): the distinct
/// training values in first-seen order get 1..n, index 0 is the single out-of-vocabulary slot.
/// The training levels are already in first-seen order, so a training code c becomes id c + 1;
/// validation levels are looked up in the vocabulary. Writes vocab.&lt;column&gt;.json and
/// {train,val}.parquet with the ids. With features.query.history, also each row's recent articles
/// (history_0 …, <see cref="PurchaseHistory"/>) as article ids.
/// </summary>
public sealed class EncodeStage : Stage
{
    public override string Name => "encode";
    public override string CodeVersion => "encode-4";
    public override IReadOnlyList<string> ConfigKeys => ["features"];
    public override IReadOnlyList<string> Upstream => ["ingest"];

    public override void Execute(StageRun run)
    {
        var features = FeatureSet.From(run.Config);
        var train = ColumnTable.ReadParquet(run.Input("ingest", "train.parquet"));
        var val = ColumnTable.ReadParquet(run.Input("ingest", "val.parquet"));
        var encodedTrain = new ColumnTable();
        var encodedVal = new ColumnTable();
        string[] LevelsOf(string split, string column) =>
            JsonSerializer.Deserialize<string[]>(File.ReadAllText(run.Input("ingest", Levels.FileName(split, column))))!;
        foreach (var column in features.CategoricalColumns)
        {
            var vocabulary = new Vocabulary(LevelsOf("train", column));
            File.WriteAllText(run.Output(Vocabulary.FileName(column)), JsonSerializer.Serialize(vocabulary.Values));
            encodedTrain.Add(column, Recode(train.Ints(column), Enumerable.Range(1, vocabulary.Count).ToArray()));
            var encoded = Recode(val.Ints(column), LevelsOf("val", column).Select(v => vocabulary[v]).ToArray());
            encodedVal.Add(column, encoded);
            var unseen = encoded.Count(i => i == Vocabulary.OutOfVocabulary);
            run.Log.Info($"Encode {column}: {vocabulary.Count:N0} values; {unseen:N0} validation rows out of vocabulary");
        }
        foreach (var column in features.NumericColumns)
        {
            encodedTrain.Add(column, train.Floats(column));
            encodedVal.Add(column, val.Floats(column));
        }
        if (train.Names.Contains(DataFiles.DayColumn))
        {
            encodedTrain.Add(DataFiles.DayColumn, train.Ints(DataFiles.DayColumn));
            encodedVal.Add(DataFiles.DayColumn, val.Ints(DataFiles.DayColumn));
        }
        if (features.History is { } history)
            AddHistory(run, features, history, encodedTrain, encodedVal);
        encodedTrain.WriteParquet(run.Output("train.parquet"));
        encodedVal.WriteParquet(run.Output("val.parquet"));
    }

    /// <summary>Training rows: purchases of earlier days; validation rows: every training purchase, never another validation row.</summary>
    static void AddHistory(StageRun run, FeatureSet features, HistorySpec history, ColumnTable train, ColumnTable val)
    {
        var (length, distinct) = (history.Length, history.Distinct);
        if (!train.Names.Contains(DataFiles.DayColumn))
            throw new PipelineError("features.query.history needs purchase dates (a t_dat column), and the training data has none");
        var (customers, articles, days) = (train.Ints(features.QueryId), train.Ints(features.CandidateId), train.Ints(DataFiles.DayColumn));
        // Training ids are 1..n, validation ids 0..n (0: unknown, no purchases).
        var customerCount = customers.Length == 0 ? 1 : customers.Max() + 1;
        var rows = PurchaseHistory.Build(customers, articles, days, customerCount, length, distinct);
        PurchaseHistory.AddTo(train, rows, length);
        var everyPurchase = Purchases.From(customers, articles, days, customerCount, articles.Length == 0 ? 1 : articles.Max() + 1, int.MaxValue);
        PurchaseHistory.AddTo(val, everyPurchase.LatestArticles(val.Ints(features.QueryId), length, distinct), length);
        var empty = Enumerable.Range(0, customers.Length).Count(r => rows[r * length] < 0);
        run.Log.Info($"Encode history: the last {length} {(distinct ? "distinct articles" : "purchases")}; {empty:N0} of {customers.Length:N0} training rows have none");
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
