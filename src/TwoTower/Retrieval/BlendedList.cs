namespace TwoTower.Retrieval;

/// <summary>
/// A customer's recommendation list from the sources: the union of their candidates ordered by the
/// ranker (higher score first; a tie keeps the union's order), or, without a ranker, the union in
/// its own order (each source's list in turn).
/// </summary>
public sealed class BlendedList(SourceSet sources, BlendFeatures features, BlendRanker? ranker)
{
    /// <summary>Customers whose candidates are scored in one call of the ranker (its per-call cost is high; memory grows with the chunk).</summary>
    const int ChunkCustomers = 2000;

    public SourceSet Sources => sources;

    public List<int> Recommend(int customer, int k) => RecommendMany([customer], k)[customer];

    /// <summary>The lists of many customers, the ranker called once per chunk of them.</summary>
    public Dictionary<int, List<int>> RecommendMany(IReadOnlyList<int> customers, int k)
    {
        var lists = new Dictionary<int, List<int>>();
        foreach (var chunk in customers.Chunk(ChunkCustomers))
        {
            var unions = chunk.Select(sources.Union).ToArray();
            if (ranker == null)
            {
                for (var i = 0; i < chunk.Length; i++)
                    lists[chunk[i]] = unions[i].Take(k).Select(c => c.Article).ToList();
                continue;
            }
            var scores = ranker.Score(chunk.Zip(unions, (c, u) => features.Compute(sources.Model, c, u)).SelectMany(f => f).ToArray());
            var at = 0;
            for (var i = 0; i < chunk.Length; i++)
            {
                var union = unions[i];
                var offset = at;
                lists[chunk[i]] = Enumerable.Range(0, union.Count).OrderByDescending(j => scores[offset + j]).ThenBy(j => j).Take(k)
                    .Select(j => union[j].Article).ToList();
                at += union.Count;
            }
        }
        return lists;
    }
}
