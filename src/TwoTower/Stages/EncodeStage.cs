using System.Text.Json;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Stages;

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
    public override string CodeVersion => "encode-3";
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
