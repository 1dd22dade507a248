namespace TwoTower.Retrieval;

/// <summary>
/// A source from an item-to-item table (co_purchase, ease, item_knn): a customer's score of article
/// j is Σ over their last `recentArticles` distinct articles i of w(i) · weight(i → j), w(i) =
/// 0.5^(age_i / half-life) with age_i the days since they last bought i (1 for every article with an
/// infinite half-life: EASE's and item-kNN's binary customer row).
/// </summary>
public sealed class NeighbourSource(string name, Purchases purchases, int count, int recentArticles, double halfLifeDays, ItemNeighbours neighbours)
    : ICandidateSource
{
    public string Name => name;
    public int Count => count;
    public ItemNeighbours Neighbours => neighbours;

    /// <summary>The customer's articles already counted (one per thread, reused: a request allocates nothing).</summary>
    [ThreadStatic] static HashSet<int>? usedOfThread;

    public void Candidates(int customer, List<Candidate> output)
    {
        var scores = ArticleScores.ForThread(purchases.ArticleCount);
        var articles = purchases.ArticlesOf(customer);
        var days = purchases.DaysOf(customer);
        var used = usedOfThread ??= [];
        used.Clear();
        for (var p = articles.Length - 1; p >= 0 && used.Count < recentArticles; p--)
        {
            var i = articles[p];
            if (!used.Add(i))
                continue;
            var weight = Purchases.Decay(purchases.AsOfDay - days[p], halfLifeDays);
            for (var n = neighbours.Start[i]; n < neighbours.Start[i + 1]; n++)
                scores.Add(neighbours.Articles[n], weight * neighbours.Weights[n]);
        }
        scores.Top(count, output);
    }
}
