namespace TwoTower.Retrieval;

/// <summary>
/// co_purchase (item-to-item): article j is a neighbour of i when customers bought both within
/// `windowDays` of each other; its weight is P(j | i) = (customers who bought i then j, or j then i,
/// within the window) / (customers who bought i). Each article keeps its top `neighbours`. A
/// customer's candidates: Σ over their last `recentArticles` distinct articles i of
/// 0.5^(age_i / half-life) · P(j | i).
/// Built with bounded memory: pairs are counted for one shard of articles i at a time (as many
/// shards as it takes to keep the pair table under `maxPairsInMemory`), each pass over all customers.
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
        long maxPairsInMemory = 20_000_000)
    {
        (this.purchases, this.count, this.recentArticles, this.halfLifeDays) = (purchases, count, recentArticles, halfLifeDays);
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
        var shards = (int)Math.Max(1, (CountPairs(windowDays) + maxPairsInMemory - 1) / maxPairsInMemory);
        var lists = new (int Article, float Weight)[purchases.ArticleCount][];
        for (var shard = 0; shard < shards; shard++)
        {
            foreach (var (i, table) in PairCounts(windowDays, shards, shard))
                lists[i] = table.OrderByDescending(p => p.Value).ThenBy(p => p.Key).Take(neighbours)
                    .Select(p => (p.Key, (float)p.Value / buyers[i])).ToArray();
        }
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

    public string Name => "co_purchase";
    public int Count => count;

    /// <summary>The distinct (customer, i, j) pairs within the window, i ≠ j, each counted once per customer.</summary>
    IEnumerable<(int I, int J)> CustomerPairs(int customer, int windowDays, HashSet<long> once)
    {
        once.Clear();
        var articles = purchases.ArticlesOf(customer).ToArray();
        var days = purchases.DaysOf(customer).ToArray();
        for (var p = 0; p < articles.Length; p++)
        {
            for (var q = p + 1; q < articles.Length && q <= p + PairsPerPurchase && days[q] - days[p] <= windowDays; q++)
            {
                var (i, j) = (articles[p], articles[q]);
                if (i == j)
                    continue;
                if (once.Add(((long)i << 32) | (uint)j))
                    yield return (i, j);
                if (once.Add(((long)j << 32) | (uint)i))
                    yield return (j, i);
            }
        }
    }

    long CountPairs(int windowDays)
    {
        var once = new HashSet<long>();
        long pairs = 0;
        for (var c = 0; c < purchases.CustomerCount; c++)
            pairs += CustomerPairs(c, windowDays, once).LongCount();
        return pairs;
    }

    /// <summary>For the articles i with i mod shards = shard: how many customers bought each j with i within the window.</summary>
    Dictionary<int, Dictionary<int, int>> PairCounts(int windowDays, int shards, int shard)
    {
        var counts = new Dictionary<int, Dictionary<int, int>>();
        var once = new HashSet<long>();
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            foreach (var (i, j) in CustomerPairs(c, windowDays, once))
            {
                if (i % shards != shard)
                    continue;
                if (!counts.TryGetValue(i, out var table))
                    counts[i] = table = new Dictionary<int, int>();
                table[j] = table.GetValueOrDefault(j) + 1;
            }
        }
        return counts;
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
