namespace TwoTower.Retrieval;

/// <summary>
/// Item-to-item neighbours from pair counts: article j is a neighbour of i when customers bought both
/// within `windowDays` of each other (at most <see cref="PairsPerPurchase"/> purchases apart). Two
/// weightings of the count n(i, j) of such customers: co_purchase's P(j | i) = n(i, j) / buyers(i),
/// and item_knn's cosine of the two articles' customer columns, n(i, j) / √(buyers(i) · buyers(j))
/// (with the window the whole history). Each article keeps its top `neighbours` by weight.
/// Built with bounded memory: each customer's distinct pairs are grouped by their first article, for
/// one shard of articles i at a time (as many shards as it takes to keep the pairs under
/// `maxPairsInMemory`), each shard two passes over all customers; a pair's customers are counted per i.
/// </summary>
public sealed class CoPurchase
{
    /// <summary>Later purchases paired with each purchase, at most: a customer with thousands of rows in a window would otherwise cost n².</summary>
    public const int PairsPerPurchase = 30;

    public enum Weighting { Conditional, Cosine }

    readonly Purchases purchases;

    CoPurchase(Purchases purchases) => this.purchases = purchases;

    public static ItemNeighbours Neighbours(Purchases purchases, int windowDays, int neighbours, Weighting weighting, long maxPairsInMemory = 40_000_000)
    {
        var builder = new CoPurchase(purchases);
        var buyers = Buyers(purchases);
        var shards = (int)Math.Max(1, (builder.PairUpperBound(windowDays) + maxPairsInMemory - 1) / maxPairsInMemory);
        var lists = new (int Article, float Weight)[purchases.ArticleCount][];
        for (var shard = 0; shard < shards; shard++)
            KeepTopNeighbours(builder.GroupedCustomerPairs(windowDays, shards, shard), neighbours, buyers, weighting, lists);
        return ItemNeighbours.FromLists(lists);
    }

    /// <summary>Distinct customers per article.</summary>
    public static int[] Buyers(Purchases purchases)
    {
        var buyers = new int[purchases.ArticleCount];
        var seen = new HashSet<int>();
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            seen.Clear();
            foreach (var a in purchases.ArticlesOf(c))
            {
                if (seen.Add(a))
                    buyers[a]++;
            }
        }
        return buyers;
    }

    /// <summary>How many ordered pairs the window allows before removing repeats: sizes the shards.</summary>
    long PairUpperBound(int windowDays)
    {
        long pairs = 0;
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            var days = purchases.DaysOf(c);
            for (var p = 0; p < days.Length; p++)
            {
                for (var q = p + 1; q < days.Length && q <= p + PairsPerPurchase && days[q] - days[p] <= windowDays; q++)
                    pairs += 2;
            }
        }
        return pairs;
    }

    /// <summary>
    /// Every customer's distinct ordered pairs (i, j), i ≠ j, within the window, for the articles i of
    /// this shard, grouped by i: i's partners are Partners[Start[i]..Start[i + 1]], one entry per
    /// customer who bought both (so a partner's count is the pair's number of customers). Two passes
    /// over the customers, counting then filling: 4 bytes a pair, and no sort of all the pairs (a
    /// sort of 8-byte pair keys per shard was most of item_knn's time at full H&amp;M scale).
    /// </summary>
    (int[] Start, int[] Partners) GroupedCustomerPairs(int windowDays, int shards, int shard)
    {
        var start = new int[purchases.ArticleCount + 1];
        var local = new List<long>();
        ForEachCustomerPair(windowDays, shards, shard, local, (i, _) => start[i + 1]++);
        for (var a = 0; a < purchases.ArticleCount; a++)
            start[a + 1] += start[a];
        var partners = new int[start[^1]];
        var next = start[..^1];
        ForEachCustomerPair(windowDays, shards, shard, local, (i, j) => partners[next[i]++] = j);
        return (start, partners);
    }

    /// <summary>Calls `pair` once per customer and distinct ordered pair (i, j) of theirs within the window, i in the shard.</summary>
    void ForEachCustomerPair(int windowDays, int shards, int shard, List<long> local, Action<int, int> pair)
    {
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            local.Clear();
            var articles = purchases.ArticlesOf(c);
            var days = purchases.DaysOf(c);
            for (var p = 0; p < articles.Length; p++)
            {
                for (var q = p + 1; q < articles.Length && q <= p + PairsPerPurchase && days[q] - days[p] <= windowDays; q++)
                {
                    var (i, j) = (articles[p], articles[q]);
                    if (i == j)
                        continue;
                    if (i % shards == shard)
                        local.Add(((long)i << 32) | (uint)j);
                    if (j % shards == shard)
                        local.Add(((long)j << 32) | (uint)i);
                }
            }
            local.Sort();
            for (var k = 0; k < local.Count; k++)
            {
                if (k == 0 || local[k] != local[k - 1])
                    pair((int)(local[k] >> 32), (int)(uint)local[k]);
            }
        }
    }

    /// <summary>Per article i of the grouped pairs: its `neighbours` j of the highest weight (then the higher count, then the lower j).</summary>
    static void KeepTopNeighbours((int[] Start, int[] Partners) pairs, int neighbours, int[] buyers, Weighting weighting, (int Article, float Weight)[][] lists)
    {
        var (start, partners) = pairs;
        var customers = new int[buyers.Length];
        var touched = new List<int>();
        for (var i = 0; i + 1 < start.Length; i++)
        {
            if (start[i + 1] == start[i])
                continue;
            touched.Clear();
            for (var at = start[i]; at < start[i + 1]; at++)
            {
                if (customers[partners[at]]++ == 0)
                    touched.Add(partners[at]);
            }
            float Weight(int j) => weighting == Weighting.Conditional
                ? (float)customers[j] / buyers[i]
                : (float)(customers[j] / Math.Sqrt((double)buyers[i] * buyers[j]));
            lists[i] = touched.Select(j => (J: j, Customers: customers[j], Weight: Weight(j))).OrderByDescending(p => p.Weight).ThenByDescending(p => p.Customers)
                .ThenBy(p => p.J).Take(neighbours).Select(p => (p.J, p.Weight)).ToArray();
            foreach (var j in touched)
                customers[j] = 0;
        }
    }
}
