namespace TwoTower.Retrieval;

/// <summary>
/// co_purchase (item-to-item): article j is a neighbour of i when customers bought both within
/// `windowDays` of each other; its weight is P(j | i) = (customers who bought i then j, or j then i,
/// within the window) / (customers who bought i). Each article keeps its top `neighbours`. A
/// customer's candidates: Σ over their last `recentArticles` distinct articles i of
/// 0.5^(age_i / half-life) · P(j | i).
/// Built with bounded memory: each customer's distinct pairs become 8-byte keys, sorted and counted
/// in runs, for one shard of articles i at a time (as many shards as it takes to keep the keys under
/// `maxPairsInMemory`), each shard one pass over all customers.
/// </summary>
public sealed class CoPurchaseSource : ICandidateSource
{
    /// <summary>Later purchases paired with each purchase, at most: a customer with thousands of rows in a window would otherwise cost n².</summary>
    const int PairsPerPurchase = 30;

    readonly Purchases purchases;
    readonly int count, recentArticles;
    readonly double halfLifeDays;
    /// <summary>Neighbours of article i: NeighbourArticles[NeighbourStart[i]..NeighbourStart[i+1]], weights beside them, best first.</summary>
    public int[] NeighbourStart { get; }
    public int[] NeighbourArticles { get; }
    public float[] NeighbourWeights { get; }

    public CoPurchaseSource(Purchases purchases, int count, int windowDays, int neighbours, int recentArticles, double halfLifeDays,
        long maxPairsInMemory = 40_000_000)
    {
        (this.purchases, this.count, this.recentArticles, this.halfLifeDays) = (purchases, count, recentArticles, halfLifeDays);
        var buyers = Buyers(purchases);
        var shards = (int)Math.Max(1, (PairUpperBound(windowDays) + maxPairsInMemory - 1) / maxPairsInMemory);
        var lists = new (int Article, float Weight)[purchases.ArticleCount][];
        for (var shard = 0; shard < shards; shard++)
            KeepTopNeighbours(SortedCustomerPairs(windowDays, shards, shard), neighbours, buyers, lists);
        NeighbourStart = new int[purchases.ArticleCount + 1];
        for (var i = 0; i < lists.Length; i++)
            NeighbourStart[i + 1] = NeighbourStart[i] + (lists[i]?.Length ?? 0);
        NeighbourArticles = new int[NeighbourStart[^1]];
        NeighbourWeights = new float[NeighbourStart[^1]];
        for (var i = 0; i < lists.Length; i++)
        {
            for (var n = 0; n < (lists[i]?.Length ?? 0); n++)
                (NeighbourArticles[NeighbourStart[i] + n], NeighbourWeights[NeighbourStart[i] + n]) = lists[i][n];
        }
    }

    /// <summary>From neighbour tables built before (a package): the arrays of <see cref="NeighbourStart"/>, <see cref="NeighbourArticles"/>, <see cref="NeighbourWeights"/>.</summary>
    public CoPurchaseSource(Purchases purchases, int count, int recentArticles, double halfLifeDays, int[] neighbourStart, int[] neighbourArticles,
        float[] neighbourWeights)
    {
        (this.purchases, this.count, this.recentArticles, this.halfLifeDays) = (purchases, count, recentArticles, halfLifeDays);
        (NeighbourStart, NeighbourArticles, NeighbourWeights) = (neighbourStart, neighbourArticles, neighbourWeights);
    }

    public string Name => "co_purchase";
    public int Count => count;

    /// <summary>Distinct customers per article.</summary>
    static int[] Buyers(Purchases purchases)
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

    /// <summary>Per article i of the sorted pairs: its `neighbours` most frequent j (ties to the lower j), weighted P(j | i).</summary>
    static void KeepTopNeighbours((long[] Keys, int Length) pairs, int neighbours, int[] buyers, (int Article, float Weight)[][] lists)
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
            lists[i] = run.OrderByDescending(p => p.Customers).ThenBy(p => p.J).Take(neighbours)
                .Select(p => (p.J, (float)p.Customers / buyers[i])).ToArray();
            start = at;
        }
    }

    public void Candidates(int customer, List<Candidate> output)
    {
        var scores = new Dictionary<int, double>();
        var articles = purchases.ArticlesOf(customer);
        var days = purchases.DaysOf(customer);
        var used = new HashSet<int>();
        for (var p = articles.Length - 1; p >= 0 && used.Count < recentArticles; p--)
        {
            var i = articles[p];
            if (!used.Add(i))
                continue;
            var weight = Purchases.Decay(purchases.AsOfDay - days[p], halfLifeDays);
            for (var n = NeighbourStart[i]; n < NeighbourStart[i + 1]; n++)
                scores[NeighbourArticles[n]] = scores.GetValueOrDefault(NeighbourArticles[n]) + weight * NeighbourWeights[n];
        }
        TopScores.Take(scores, count, output);
    }
}
