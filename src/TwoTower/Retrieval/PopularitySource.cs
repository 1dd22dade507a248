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
    readonly Candidate[] overall;
    readonly Dictionary<int, Candidate[]> bySegment = new();

    /// <param name="segmentOfCustomer">Each customer's segment (−1: none), or null for one list for everyone.</param>
    public PopularitySource(Purchases purchases, int count, int windowDays, double halfLifeDays, int[]? segmentOfCustomer)
    {
        this.count = count;
        this.segmentOfCustomer = segmentOfCustomer;
        // The window's purchases are the ones that count; the lists are built once.
        var all = new Dictionary<int, double>();
        var segments = new Dictionary<int, Dictionary<int, double>>();
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
                all[articles[i]] = all.GetValueOrDefault(articles[i]) + weight;
                if (segment < 0)
                    continue;
                if (!segments.TryGetValue(segment, out var table))
                    segments[segment] = table = new Dictionary<int, double>();
                table[articles[i]] = table.GetValueOrDefault(articles[i]) + weight;
            }
        }
        overall = Top(all);
        foreach (var (segment, table) in segments)
            bySegment[segment] = Top(table);
    }

    public string Name => "recent_popularity";
    public int Count => count;

    Candidate[] Top(Dictionary<int, double> scores)
    {
        var list = new List<Candidate>();
        TopScores.Take(scores, count, list);
        return list.ToArray();
    }

    public void Candidates(int customer, List<Candidate> output)
    {
        output.Clear();
        var segment = segmentOfCustomer?[customer] ?? -1;
        if (segment >= 0 && bySegment.TryGetValue(segment, out var list))
            output.AddRange(list);
        // Topped up from the overall list, after the segment's own (each keeps its overall score).
        var seen = output.Select(x => x.Article).ToHashSet();
        foreach (var candidate in overall)
        {
            if (output.Count >= count)
                break;
            if (seen.Add(candidate.Article))
                output.Add(candidate);
        }
    }
}
