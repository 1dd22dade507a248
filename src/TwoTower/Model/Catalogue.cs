namespace TwoTower.Model;

/// <summary>The articles the model ranks: every distinct training article, as Evaluate, the candidate sources and Package take them.</summary>
public static class Catalogue
{
    /// <summary>The candidate set: the first training row of each distinct article (the notebook's drop_duplicates), in row order.</summary>
    public static int[] Rows(int[] trainItems)
    {
        var firstRow = new Dictionary<int, int>();
        for (var r = 0; r < trainItems.Length; r++)
            firstRow.TryAdd(trainItems[r], r);
        return firstRow.Values.Order().ToArray();
    }
}
