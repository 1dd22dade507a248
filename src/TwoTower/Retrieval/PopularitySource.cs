namespace TwoTower.Retrieval;

/// <summary>
/// recent_popularity: articles bought most over the last `windowDays` before the as-of day, each
/// purchase weighted 0.5^(age / half-life); per customer segment when segments are given (e.g.
/// age bands), topped up from the overall list when a segment's list is short.
/// </summary>
public sealed class PopularitySource : ICandidateSource
{
    readonly int count;
    readonly int[]? segmentOfCustomer;

    /// <summary>Each customer's segment (−1: none), or null when there are no segments.</summary>
    public int[]? SegmentOfCustomer => segmentOfCustomer;
    /// <summary>The overall list, and each segment's own list topped up from it (built once).</summary>
    readonly Candidate[] overall;
    readonly Dictionary<int, Candidate[]> bySegment = new();

    /// <param name="segmentOfCustomer">Each customer's segment (−1: none), or null for one list for everyone.</param>
    public PopularitySource(Purchases purchases, int count, int windowDays, double halfLifeDays, int[]? segmentOfCustomer)
    {
        this.count = count;
        this.segmentOfCustomer = segmentOfCustomer;
        // The window's purchases are the ones that count.
        var all = new ArticleScores(purchases.ArticleCount);
        var segments = new Dictionary<int, ArticleScores>();
        var from = purchases.AsOfDay - windowDays;
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            var articles = purchases.ArticlesOf(c);
            var days = purchases.DaysOf(c);
            var segment = segmentOfCustomer?[c] ?? -1;
            for (var i = 0; i < articles.Length; i++)
            {
                if (days[i] < from)
                    continue;
                var weight = Purchases.Decay(purchases.AsOfDay - days[i], halfLifeDays);
                all.Add(articles[i], weight);
                if (segment < 0)
                    continue;
                if (!segments.TryGetValue(segment, out var table))
                    segments[segment] = table = new ArticleScores(purchases.ArticleCount);
                table.Add(articles[i], weight);
            }
        }
        var list = new List<Candidate>();
        all.Top(count, list);
        overall = [.. list];
        foreach (var (segment, table) in segments)
        {
            table.Top(count, list);
            // Topped up from the overall list, after the segment's own (each keeps its overall score).
            var seen = list.Select(x => x.Article).ToHashSet();
            list.AddRange(overall.Where(candidate => seen.Add(candidate.Article)).Take(count - list.Count));
            bySegment[segment] = [.. list];
        }
    }

    public string Name => "recent_popularity";
    public int Count => count;

    public void Candidates(int customer, List<Candidate> output)
    {
        output.Clear();
        var segment = segmentOfCustomer?[customer] ?? -1;
        output.AddRange(segment >= 0 && bySegment.TryGetValue(segment, out var list) ? list : overall);
    }
}
