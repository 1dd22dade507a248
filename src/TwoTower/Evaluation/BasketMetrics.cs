namespace TwoTower.Evaluation;

/// <summary>
/// Per-customer metrics as the H&amp;M competition defined them, over each customer's basket (the
/// distinct articles they bought in the validation period): MAP@12, recall@k of the basket, and the
/// share of validation rows whose article is in the customer's top 100 (the per-row hit@100 of a
/// list). Customers without a validation purchase are left out of the means.
/// </summary>
public static class BasketMetrics
{
    /// <param name="ListRecall">Recall of the whole list, however long.</param>
    public sealed record Result(string Method, int Customers, double Map12, IReadOnlyDictionary<int, double> RecallAt, double RowHitAt100,
        double ListRecall, double MeanListLength);

    /// <summary>AP@k = (1 / min(m, k)) Σ_{i ≤ k} P(i)·rel(i), m = the basket's size; a repeated prediction counts once.</summary>
    public static double AveragePrecision(IReadOnlyList<int> predicted, IReadOnlySet<int> basket, int k = 12)
    {
        if (basket.Count == 0)
            return 0;
        var seen = new HashSet<int>();
        double hits = 0, sum = 0;
        for (var i = 0; i < Math.Min(k, predicted.Count); i++)
        {
            if (basket.Contains(predicted[i]) && seen.Add(predicted[i]))
            {
                hits++;
                sum += hits / (i + 1);
            }
        }
        return sum / Math.Min(basket.Count, k);
    }

    /// <param name="baskets">Each evaluated customer's distinct validation articles.</param>
    /// <param name="rows">The validation rows of those customers, (customer, article), duplicates included.</param>
    /// <param name="listOf">The method's list for a customer, best first (at least max(ks) long where it can be).</param>
    public static Result Compute(string method, IReadOnlyDictionary<int, HashSet<int>> baskets, IReadOnlyList<(int Customer, int Article)> rows,
        Func<int, IReadOnlyList<int>> listOf, IReadOnlyList<int> ks)
    {
        var rowsOf = RowArticles(rows);
        var means = new Means(method, ks);
        foreach (var (customer, basket) in baskets)
            means.Add(Score(listOf(customer), basket, rowsOf[customer], ks));
        return means.Result(rows.Count);
    }

    /// <summary>Each customer's validation row articles, duplicates included.</summary>
    public static Dictionary<int, List<int>> RowArticles(IReadOnlyList<(int Customer, int Article)> rows)
    {
        var rowsOf = new Dictionary<int, List<int>>();
        foreach (var (customer, article) in rows)
            (rowsOf.TryGetValue(customer, out var list) ? list : rowsOf[customer] = []).Add(article);
        return rowsOf;
    }

    /// <summary>One customer's terms of a method's means: AP@12, list length, recall of the whole list and at each k, rows in the top 100.</summary>
    public sealed record CustomerScore(double AveragePrecision, int Length, double ListRecall, double[] RecallAt, int RowHits);

    public static CustomerScore Score(IReadOnlyList<int> list, IReadOnlySet<int> basket, IReadOnlyList<int> rowArticles, IReadOnlyList<int> ks)
    {
        var top100 = list.Take(100).ToHashSet();
        return new CustomerScore(AveragePrecision(list, basket), list.Count, list.Distinct().Count(basket.Contains) / (double)basket.Count,
            ks.Select(k => list.Take(k).Distinct().Count(basket.Contains) / (double)basket.Count).ToArray(), rowArticles.Count(top100.Contains));
    }

    /// <summary>A method's means over customers, summed in the order the customers are added (the same order, the same bits).</summary>
    public sealed class Means(string method, IReadOnlyList<int> ks)
    {
        public string Method => method;

        double map, length, whole;
        readonly double[] recall = new double[ks.Count];
        long rowHits;
        int customers;

        public void Add(CustomerScore score)
        {
            map += score.AveragePrecision;
            length += score.Length;
            whole += score.ListRecall;
            for (var i = 0; i < ks.Count; i++)
                recall[i] += score.RecallAt[i];
            rowHits += score.RowHits;
            customers++;
        }

        public Result Result(int rowCount)
        {
            var n = Math.Max(1, customers);
            return new Result(method, customers, map / n, ks.Select((k, i) => (k, i)).ToDictionary(x => x.k, x => recall[x.i] / n),
                rowHits / (double)Math.Max(1, rowCount), whole / n, length / n);
        }
    }
}
