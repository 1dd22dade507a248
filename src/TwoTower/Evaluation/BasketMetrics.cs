namespace TwoTower.Evaluation;

/// <summary>
/// Per-customer metrics as the H&amp;M competition defined them, over each customer's basket (the
/// distinct articles they bought in the validation period): MAP@12, recall@k of the basket, and the
/// share of validation rows whose article is in the customer's top 100 (the per-row hit@100 of a
/// list). Customers without a validation purchase are left out of the means.
/// </summary>
public static class BasketMetrics
{
    /// <param name="ListRecall">Recall of the whole list, however long (for the union: the candidate recall).</param>
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
        double map = 0, length = 0, whole = 0;
        var recall = ks.ToDictionary(k => k, _ => 0.0);
        var top100 = new Dictionary<int, HashSet<int>>();
        foreach (var (customer, basket) in baskets)
        {
            var list = listOf(customer);
            map += AveragePrecision(list, basket);
            length += list.Count;
            whole += list.Distinct().Count(basket.Contains) / (double)basket.Count;
            foreach (var k in ks)
                recall[k] += list.Take(k).Distinct().Count(basket.Contains) / (double)basket.Count;
            top100[customer] = list.Take(100).ToHashSet();
        }
        var n = Math.Max(1, baskets.Count);
        var rowHits = rows.Count(r => top100[r.Customer].Contains(r.Article)) / (double)Math.Max(1, rows.Count);
        return new Result(method, baskets.Count, map / n, ks.ToDictionary(k => k, k => recall[k] / n), rowHits, whole / n, length / n);
    }
}
