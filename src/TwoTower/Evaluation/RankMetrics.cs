namespace TwoTower.Evaluation;

/// <summary>
/// Metrics from each validation row's rank of its positive (1 = best; <see cref="Miss"/> when it
/// can never be retrieved). With TFRS's rule, rank = 1 + #candidates scoring strictly higher.
/// </summary>
public static class RankMetrics
{
    public const long Miss = long.MaxValue;

    public sealed record Result(int Rows, IReadOnlyDictionary<int, double> HitAt, double Mrr, IReadOnlyDictionary<int, double> NdcgAt);

    /// <summary>hit@k = share of rows with rank ≤ k; MRR = mean 1/rank counting ranks above max k as 0; NDCG@k = mean 1/log2(rank+1) for rank ≤ k.</summary>
    public static Result Compute(ReadOnlySpan<long> ranks, IReadOnlyList<int> ks)
    {
        var maxK = ks.Max();
        var hits = new long[ks.Count];
        var ndcg = new double[ks.Count];
        double mrr = 0;
        foreach (var rank in ranks)
        {
            if (rank <= maxK)
                mrr += 1.0 / rank;
            for (var i = 0; i < ks.Count; i++)
            {
                if (rank <= ks[i])
                {
                    hits[i]++;
                    ndcg[i] += 1 / Math.Log2(rank + 1);
                }
            }
        }
        var n = Math.Max(1, ranks.Length);
        return new Result(ranks.Length,
            ks.Select((k, i) => (k, hits[i] / (double)n)).ToDictionary(x => x.k, x => x.Item2),
            mrr / n,
            ks.Select((k, i) => (k, ndcg[i] / n)).ToDictionary(x => x.k, x => x.Item2));
    }

    /// <summary>
    /// Expected metrics of a uniformly random ranking of the catalogue: a positive in the
    /// catalogue has rank r with probability 1/N for r = 1..N; one outside it is a miss.
    /// </summary>
    public static Result RandomExpected(int catalogueSize, double inCatalogueShare, int rows, IReadOnlyList<int> ks)
    {
        var maxK = ks.Max();
        double mrr = 0;
        for (var r = 1; r <= Math.Min(maxK, catalogueSize); r++)
            mrr += 1.0 / r;
        double Ndcg(int k)
        {
            double s = 0;
            for (var r = 1; r <= Math.Min(k, catalogueSize); r++)
                s += 1 / Math.Log2(r + 1);
            return s / catalogueSize * inCatalogueShare;
        }
        return new Result(rows,
            ks.ToDictionary(k => k, k => Math.Min(k, catalogueSize) / (double)catalogueSize * inCatalogueShare),
            mrr / catalogueSize * inCatalogueShare,
            ks.ToDictionary(k => k, Ndcg));
    }
}

/// <summary>Ranks of the validation positives under the non-learned baselines.</summary>
public static class Baselines
{
    /// <summary>Training articles by purchase count, ties by first appearance; returns rank (1-based) per article id, Miss for unseen.</summary>
    public static long[] PopularityRanks(ReadOnlySpan<int> trainItems, int itemIdCount)
    {
        var counts = new long[itemIdCount];
        var firstSeen = new int[itemIdCount];
        Array.Fill(firstSeen, int.MaxValue);
        for (var r = 0; r < trainItems.Length; r++)
        {
            var item = trainItems[r];
            counts[item]++;
            if (firstSeen[item] == int.MaxValue)
                firstSeen[item] = r;
        }
        var order = Enumerable.Range(0, itemIdCount).Where(i => counts[i] > 0)
            .OrderByDescending(i => counts[i]).ThenBy(i => firstSeen[i]).ToArray();
        var ranks = new long[itemIdCount];
        Array.Fill(ranks, RankMetrics.Miss);
        for (var p = 0; p < order.Length; p++)
            ranks[order[p]] = p + 1;
        return ranks;
    }

    /// <summary>
    /// Buy again: the customer's own training articles by purchase count, then most recent
    /// purchase (later row first), then the popularity list without those articles.
    /// </summary>
    public static long[] BuyAgainRanks(ReadOnlySpan<int> trainCustomers, ReadOnlySpan<int> trainItems,
        ReadOnlySpan<int> valCustomers, ReadOnlySpan<int> valItems, long[] popularityRanks)
    {
        var history = new Dictionary<int, Dictionary<int, (int Count, int Last)>>();
        for (var r = 0; r < trainCustomers.Length; r++)
        {
            var customer = trainCustomers[r];
            if (customer == 0)
                continue;
            if (!history.TryGetValue(customer, out var items))
                history[customer] = items = new Dictionary<int, (int, int)>();
            var seen = items.GetValueOrDefault(trainItems[r]);
            items[trainItems[r]] = (seen.Count + 1, r);
        }
        var lists = new Dictionary<int, (int[] Ordered, long[] PopRanksSorted)>();
        var ranks = new long[valCustomers.Length];
        for (var r = 0; r < valCustomers.Length; r++)
        {
            var customer = valCustomers[r];
            var item = valItems[r];
            if (!lists.TryGetValue(customer, out var list))
            {
                var items = history.GetValueOrDefault(customer);
                var ordered = items == null ? [] : items.OrderByDescending(kv => kv.Value.Count).ThenByDescending(kv => kv.Value.Last)
                    .Select(kv => kv.Key).ToArray();
                list = (ordered, ordered.Select(i => popularityRanks[i]).Order().ToArray());
                lists[customer] = list;
            }
            var position = Array.IndexOf(list.Ordered, item);
            if (position >= 0)
            {
                ranks[r] = position + 1;
                continue;
            }
            var pop = popularityRanks[item];
            if (pop == RankMetrics.Miss)
            {
                ranks[r] = RankMetrics.Miss;
                continue;
            }
            // Popular articles already in the customer's list are skipped in the padding.
            var skipped = UpperBound(list.PopRanksSorted, pop);
            ranks[r] = list.Ordered.Length + pop - skipped;
        }
        return ranks;
    }

    static int UpperBound(long[] sorted, long value)
    {
        var index = Array.BinarySearch(sorted, value);
        return index >= 0 ? index + 1 : ~index;
    }
}
