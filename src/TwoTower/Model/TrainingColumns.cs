using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Model;

/// <summary>
/// Encoded and normalized columns (artifacts/normalize) held in memory for training. The history
/// slots (history_0 …) are held as one row-major column, <see cref="PurchaseHistory.Column"/> (RowCount × length).
/// </summary>
public sealed record TrainingColumns(int RowCount, IReadOnlyDictionary<string, int[]> Ints, IReadOnlyDictionary<string, float[]> Floats)
{
    /// <summary>A split ("train" or "val") of artifacts/normalize, as Normalize wrote it.</summary>
    public static TrainingColumns Read(ArtifactStore store, string split) =>
        From(ColumnTable.ReadParquet(Path.Combine(store.StageDir("normalize"), split + ".parquet")));

    public static TrainingColumns From(ColumnTable table)
    {
        var ints = new Dictionary<string, int[]>();
        var floats = new Dictionary<string, float[]>();
        var slots = Enumerable.Range(0, PurchaseHistory.SlotCount(table)).Select(PurchaseHistory.SlotColumn).ToHashSet();
        foreach (var name in table.Names)
        {
            if (slots.Contains(name))
                continue;
            if (table.Column(name) is int[] i)
                ints[name] = i;
            else
                floats[name] = table.Floats(name);
        }
        if (PurchaseHistory.Flatten(table) is { } history)
            ints[PurchaseHistory.Column] = history;
        return new TrainingColumns(table.RowCount, ints, floats);
    }

    /// <summary>The listed rows of every column (the history's slots with their row).</summary>
    public TrainingColumns Subset(IReadOnlyList<int> rows)
    {
        int[] Take(int[] column)
        {
            var width = RowCount == 0 ? 1 : column.Length / RowCount;
            var result = new int[rows.Count * width];
            for (var i = 0; i < rows.Count; i++)
                column.AsSpan(rows[i] * width, width).CopyTo(result.AsSpan(i * width));
            return result;
        }
        return new TrainingColumns(rows.Count, Ints.ToDictionary(c => c.Key, c => Take(c.Value)),
            Floats.ToDictionary(c => c.Key, c => rows.Select(r => c.Value[r]).ToArray()));
    }
}
