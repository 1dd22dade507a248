namespace TwoTower.Data;

/// <summary>
/// The query tower's history input: for each row, the customer's last `Length` distinct purchased
/// articles (or, not distinct, their last `Length` purchases, an article bought again in each of
/// its slots), most recent first, −1 in the empty slots. A training row sees only purchases of earlier
/// days (never its own day: a row must not see itself or its basket); a validation row, and a
/// served customer, every training purchase. Parquet holds one int column per slot
/// (history_0 … history_{L−1}); in memory the slots are one row-major array, RowCount × Length.
/// </summary>
public static class PurchaseHistory
{
    /// <summary>The flattened in-memory column (see <see cref="Model.TrainingColumns"/>).</summary>
    public const string Column = "history";

    public static string SlotColumn(int slot) => $"history_{slot}";

    /// <summary>The weight of slot j before normalisation: 1 (mean), or 1/(1+j) (recency: the latest purchase counts most).</summary>
    public static float[] SlotWeights(int length, bool recency) =>
        Enumerable.Range(0, length).Select(j => recency ? 1f / (1 + j) : 1f).ToArray();

    /// <summary>
    /// Each row's history strictly before its day (rows × length; customerCount &gt; every customer
    /// id). Within a day, a later row counts as more recent. What a validation row or a served
    /// customer sees, every training purchase, is <see cref="Latest"/> of their purchases
    /// (<see cref="Retrieval.Purchases.LatestArticles"/>).
    /// </summary>
    public static int[] Build(int[] customers, int[] articles, int[] days, int customerCount, int length, bool distinct = true)
    {
        var n = customers.Length;
        // Rows grouped by customer (stable), then by day (stable): each customer's purchases in time order.
        var start = new int[customerCount + 1];
        foreach (var c in customers)
            start[c + 1]++;
        for (var c = 0; c < customerCount; c++)
            start[c + 1] += start[c];
        var next = start[..^1].ToArray();
        var order = new int[n];
        for (var r = 0; r < n; r++)
            order[next[customers[r]]++] = r;
        for (var c = 0; c < customerCount; c++)
            order.AsSpan(start[c], start[c + 1] - start[c]).Sort((a, b) => days[a] != days[b] ? days[a].CompareTo(days[b]) : a.CompareTo(b));

        var rows = new int[(long)n * length];
        var recent = new int[length];
        for (var c = 0; c < customerCount; c++)
        {
            var count = 0;
            for (var i = start[c]; i < start[c + 1];)
            {
                var day = days[order[i]];
                var end = i;
                while (end < start[c + 1] && days[order[end]] == day)
                    end++;
                for (var k = i; k < end; k++)
                    Write(recent, count, rows.AsSpan(order[k] * length, length));
                for (var k = i; k < end; k++)
                    count = Push(recent, count, articles[order[k]], distinct);
                i = end;
            }
        }
        return rows;
    }

    /// <summary>The last `length` distinct articles (or purchases) of a purchase sequence in time order, most recent first, −1 padded.</summary>
    public static void Latest(ReadOnlySpan<int> articlesInTimeOrder, Span<int> output, bool distinct = true)
    {
        var count = 0;
        for (var i = articlesInTimeOrder.Length - 1; i >= 0 && count < output.Length; i--)
        {
            if (!distinct || !output[..count].Contains(articlesInTimeOrder[i]))
                output[count++] = articlesInTimeOrder[i];
        }
        output[count..].Fill(-1);
    }

    static void Write(int[] recent, int count, Span<int> target)
    {
        recent.AsSpan(0, count).CopyTo(target);
        target[count..].Fill(-1);
    }

    /// <summary>Moves (distinct) or inserts the article at the front of the most-recent-first list; returns the new count.</summary>
    static int Push(int[] recent, int count, int article, bool distinct)
    {
        var at = distinct ? Array.IndexOf(recent, article, 0, count) : -1;
        if (at < 0)
            at = count < recent.Length ? count++ : count - 1;
        Array.Copy(recent, 0, recent, 1, at);
        recent[0] = article;
        return count;
    }

    /// <summary>Slot columns of a table (history_0 …) as one row-major array, or null when the table has none.</summary>
    public static int[]? Flatten(ColumnTable table)
    {
        var length = SlotCount(table);
        if (length == 0)
            return null;
        var flat = new int[(long)table.RowCount * length];
        for (var j = 0; j < length; j++)
        {
            var slot = table.Ints(SlotColumn(j));
            for (var r = 0; r < slot.Length; r++)
                flat[r * length + j] = slot[r];
        }
        return flat;
    }

    /// <summary>How many slot columns (history_0, history_1, …) a table holds.</summary>
    public static int SlotCount(ColumnTable table)
    {
        var length = 0;
        while (table.Names.Contains(SlotColumn(length)))
            length++;
        return length;
    }

    /// <summary>Adds a row-major history array to a table as its slot columns.</summary>
    public static void AddTo(ColumnTable table, int[] flat, int length)
    {
        var rows = flat.Length / length;
        for (var j = 0; j < length; j++)
        {
            var slot = new int[rows];
            for (var r = 0; r < rows; r++)
                slot[r] = flat[r * length + j];
            table.Add(SlotColumn(j), slot);
        }
    }
}
