namespace TwoTower.Retrieval;

/// <summary>
/// A customer's recommendation list from the sources: the union of their candidates ordered by the
/// ranker (higher score first; a tie keeps the union's order), or, without a ranker, the union in
/// its own order (each source's list in turn).
/// </summary>
public sealed class BlendedList(SourceSet sources, BlendFeatures features, BlendRanker? ranker)
{
    public SourceSet Sources => sources;

    public List<int> Recommend(int customer, int k)
    {
        var union = sources.Union(customer);
        if (ranker == null || union.Count == 0)
            return union.Take(k).Select(c => c.Article).ToList();
        var scores = ranker.Score(features.Compute(customer, union));
        return Enumerable.Range(0, union.Count).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(k).Select(i => union[i].Article).ToList();
    }
}
