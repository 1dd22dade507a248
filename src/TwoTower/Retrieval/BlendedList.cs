namespace TwoTower.Retrieval;

/// <summary>A candidate of a blended list: its article, the ranker's score (NaN without a ranker) and its entry in the union (which sources proposed it).</summary>
public readonly record struct BlendedCandidate(int Article, float Score, UnionCandidate Union);

/// <summary>
/// A customer's recommendation list from the sources: the union of their candidates ordered by the
/// ranker (higher score first; a tie keeps the union's order), or, without a ranker, the union in
/// its own order (each source's list in turn).
/// </summary>
public sealed class BlendedList(SourceSet sources, BlendFeatures features, BlendRanker? ranker)
{
    public SourceSet Sources => sources;

    /// <summary>The first k articles of the customer's union (<see cref="SourceSet.Union"/>) in the blend's order.</summary>
    public List<int> Recommend(int customer, List<UnionCandidate> union, int k) =>
        Order(ranker, features, sources.Model, customer, union, k).Select(c => c.Article).ToList();

    /// <summary>
    /// The first k of a customer's union in the blend's order, each with the ranker's score (NaN
    /// without a ranker): the one ordering rule of the pipeline and of a package.
    /// </summary>
    public static List<BlendedCandidate> Order(BlendRanker? ranker, BlendFeatures features, IModelScorer? model, int customer,
        List<UnionCandidate> union, int k)
    {
        if (ranker == null || union.Count == 0)
            return union.Take(k).Select(c => new BlendedCandidate(c.Article, float.NaN, c)).ToList();
        var scores = ranker.Score(features.Compute(model, customer, union));
        return Enumerable.Range(0, union.Count).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(k)
            .Select(i => new BlendedCandidate(union[i].Article, scores[i], union[i])).ToList();
    }
}
