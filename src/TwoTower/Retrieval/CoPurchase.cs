namespace TwoTower.Retrieval;

/// <summary>
/// Item-to-item neighbours from pair counts: article j is a neighbour of i when customers bought both
/// within `windowDays` of each other (at most <see cref="PairsPerPurchase"/> purchases apart). Two
/// weightings of the count n(i, j) of such customers: co_purchase's P(j | i) = n(i, j) / buyers(i),
/// and item_knn's cosine of the two articles' customer columns, n(i, j) / √(buyers(i) · buyers(j))
/// (with the window the whole history). Each article keeps its top `neighbours` by weight.
/// Built with bounded memory: each customer's distinct pairs become 8-byte keys, sorted and counted
/// in runs, for one shard of articles i at a time (as many shards as it takes to keep the keys under
/// `maxPairsInMemory`), each shard one pass over all customers.
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
            KeepTopNeighbours(builder.SortedCustomerPairs(windowDays, shards, shard), neighbours, buyers, weighting, lists);
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
    /// this shard, as sorted keys i·2³² + j: a run of equal keys is the number of customers of that pair.
    /// </summary>
    (long[] Keys, int Length) SortedCustomerPairs(int windowDays, int shards, int shard)
    {
        var keys = new long[1 << 16];
        var length = 0;
        var local = new List<long>();
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
                if (k > 0 && local[k] == local[k - 1])
                    continue;
                if (length == keys.Length)
                    Array.Resize(ref keys, keys.Length * 2);
                keys[length++] = local[k];
            }
        }
        Array.Sort(keys, 0, length);
        return (keys, length);
    }

    /// <summary>Per article i of the sorted pairs: its `neighbours` j of the highest weight (then the higher count, then the lower j).</summary>
    static void KeepTopNeighbours((long[] Keys, int Length) pairs, int neighbours, int[] buyers, Weighting weighting, (int Article, float Weight)[][] lists)
    {
        var (keys, length) = pairs;
        var run = new List<(int J, int Customers)>();
        for (var start = 0; start < length;)
        {
            var i = (int)(keys[start] >> 32);
            run.Clear();
            var at = start;
            while (at < length && (int)(keys[at] >> 32) == i)
            {
                var end = at;
                while (end < length && keys[end] == keys[at])
                    end++;
                run.Add(((int)(uint)keys[at], end - at));
                at = end;
            }
            float Weight((int J, int Customers) p) => weighting == Weighting.Conditional
                ? (float)p.Customers / buyers[i]
                : (float)(p.Customers / Math.Sqrt((double)buyers[i] * buyers[p.J]));
            lists[i] = run.Select(p => (p.J, p.Customers, Weight: Weight(p))).OrderByDescending(p => p.Weight).ThenByDescending(p => p.Customers)
                .ThenBy(p => p.J).Take(neighbours).Select(p => (p.J, p.Weight)).ToArray();
            start = at;
        }
    }
}
