namespace TwoTower.Retrieval;

/// <summary>
/// buy_again: the customer's past articles, each scored by its purchases weighted by recency:
/// Σ 0.5^(age / half-life) over the customer's purchases of it, age in days before the as-of day.
/// </summary>
public sealed class BuyAgainSource(Purchases purchases, int count, double halfLifeDays) : ICandidateSource
{
    public string Name => "buy_again";
    public int Count => count;

    public void Candidates(int customer, List<Candidate> output)
    {
        var scores = ArticleScores.ForThread(purchases.ArticleCount);
        var articles = purchases.ArticlesOf(customer);
        var days = purchases.DaysOf(customer);
        for (var i = 0; i < articles.Length; i++)
            scores.Add(articles[i], Purchases.Decay(purchases.AsOfDay - days[i], halfLifeDays));
        scores.Top(count, output);
    }
}
