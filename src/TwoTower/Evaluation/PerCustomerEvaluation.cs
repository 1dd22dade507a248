using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;

namespace TwoTower.Evaluation;

/// <summary>
/// The H&amp;M competition's view: every validation customer seen in training gets one list per
/// method (each candidate source alone, the union of the sources, the blend, all-time popularity),
/// scored against their validation basket with <see cref="BasketMetrics"/>. Sources and blend are
/// built from training purchases only, as of the day after the last.
/// </summary>
public static class PerCustomerEvaluation
{
    /// <returns>The metrics of every method, and the sources (for per-row figures of the item-to-item baselines).</returns>
    public static (IReadOnlyList<BasketMetrics.Result> Results, SourceSet Sources) Run(ArtifactStore store, PipelineConfig config, TwoTowerModel model, IKernels kernels,
        TrainingColumns train, TrainingColumns val, FeatureSet features, IReadOnlyList<int> ks, IPipelineLog log)
    {
        var valCustomers = val.Ints[features.QueryId];
        var valArticles = val.Ints[features.CandidateId];
        var rows = Enumerable.Range(0, val.RowCount).Where(r => valCustomers[r] != Vocabulary.OutOfVocabulary)
            .Select(r => (Customer: valCustomers[r], Article: valArticles[r])).ToList();
        var baskets = rows.GroupBy(r => r.Customer).ToDictionary(g => g.Key, g => g.Select(r => r.Article).ToHashSet());
        var customers = baskets.Keys.Order().ToList();
        var blended = BlendArtifacts.AtEndOfTraining(store, config, model, kernels, train, customers);
        var length = Math.Max(100, ks.Max());
        log.Info($"Per-customer evaluation: {customers.Count:N0} validation customers seen in training, {rows.Count:N0} of their purchases");

        var results = new List<BasketMetrics.Result>();
        var list = new List<Candidate>();
        foreach (var source in blended.Sources.Sources)
            results.Add(BasketMetrics.Compute(source.Name, baskets, rows, c =>
            {
                source.Candidates(c, list);
                return list.Select(x => x.Article).ToList();
            }, ks));
        results.Add(BasketMetrics.Compute("union of the sources", baskets, rows, c => blended.Sources.Union(c).Select(x => x.Article).ToList(), ks));
        var blendLists = blended.RecommendMany(customers, length);
        results.Add(BasketMetrics.Compute("blend", baskets, rows, c => blendLists[c], ks));
        var popular = AllTimePopular(train.Ints[features.CandidateId], length);
        results.Add(BasketMetrics.Compute("popularity (all time)", baskets, rows, _ => popular, ks));
        return (results, blended.Sources);
    }

    static List<int> AllTimePopular(int[] articles, int count) =>
        articles.GroupBy(a => a).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Take(count).Select(g => g.Key).ToList();
}
