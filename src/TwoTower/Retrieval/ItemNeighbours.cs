using TwoTower.Data;

namespace TwoTower.Retrieval;

/// <summary>
/// A sparse item-to-item table: the neighbours of article i are Articles[Start[i]..Start[i+1]],
/// with their Weights beside them, best first. What co_purchase, ease and item_knn compute, what
/// <see cref="NeighbourSource"/> scores, and what a package stores (one Parquet file per source).
/// </summary>
public sealed record ItemNeighbours(int[] Start, int[] Articles, float[] Weights)
{
    /// <summary>From one list per article (null: none), best first.</summary>
    public static ItemNeighbours FromLists(IReadOnlyList<(int Article, float Weight)[]?> lists)
    {
        var start = new int[lists.Count + 1];
        for (var i = 0; i < lists.Count; i++)
            start[i + 1] = start[i] + (lists[i]?.Length ?? 0);
        var (articles, weights) = (new int[start[^1]], new float[start[^1]]);
        for (var i = 0; i < lists.Count; i++)
        {
            for (var n = 0; n < (lists[i]?.Length ?? 0); n++)
                (articles[start[i] + n], weights[start[i] + n]) = lists[i]![n];
        }
        return new ItemNeighbours(start, articles, weights);
    }

    /// <summary>As rows (article, neighbour, weight), the articles in order.</summary>
    public ColumnTable ToTable()
    {
        var rowArticle = new int[Articles.Length];
        for (var a = 0; a + 1 < Start.Length; a++)
            rowArticle.AsSpan(Start[a], Start[a + 1] - Start[a]).Fill(a);
        return new ColumnTable().Add("article", rowArticle).Add("neighbour", Articles).Add("weight", Weights);
    }

    /// <summary>Back from <see cref="ToTable"/>'s rows, for `articleCount` article ids.</summary>
    public static ItemNeighbours FromTable(ColumnTable table, int articleCount)
    {
        var start = new int[articleCount + 1];
        foreach (var a in table.Ints("article"))
            start[a + 1]++;
        for (var a = 0; a < articleCount; a++)
            start[a + 1] += start[a];
        return new ItemNeighbours(start, table.Ints("neighbour"), table.Floats("weight"));
    }
}
