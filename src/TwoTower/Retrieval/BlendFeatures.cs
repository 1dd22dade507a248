using TwoTower.Model;

namespace TwoTower.Retrieval;

/// <summary>
/// The ranker's features for one (customer, candidate): each source's score and rank (<see cref="Absent"/>
/// where it did not propose the candidate), the two-tower score and its repeat bias's share
/// (<see cref="ModelScore"/>), the customer's purchase count and days since their last purchase,
/// how often and how long ago they bought this article, the article's popularity in the last 7
/// and 28 days and overall, with its days since first and last sale, and its repeat rate (the share of
/// its buyers who bought it on two days or more: staples are bought again, one-offs are not).
/// Everything is computed from the purchases the sources were built from, i.e. as of their day.
/// </summary>
public sealed class BlendFeatures
{
    /// <summary>
    /// The value of a feature that does not exist for the pair (a source that did not propose it, a
    /// purchase that never happened): far below every real value, never NaN, so that the trees see
    /// one ordinary value and every scorer of them (LightGBM's missing-value rules differ between
    /// implementations) agrees.
    /// </summary>
    public const float Absent = -1e30f;

    readonly Purchases p;
    readonly int[] sales7, sales28, salesAll, firstDay, lastDay, buyers, repeatBuyers;

    /// <param name="sourceNames">The sources in the order of a <see cref="SourceSet"/>'s union.</param>
    public BlendFeatures(Purchases purchases, IReadOnlyList<string> sourceNames)
    {
        p = purchases;
        (sales7, sales28, salesAll) = (new int[p.ArticleCount], new int[p.ArticleCount], new int[p.ArticleCount]);
        firstDay = Enumerable.Repeat(int.MaxValue, p.ArticleCount).ToArray();
        lastDay = Enumerable.Repeat(int.MinValue, p.ArticleCount).ToArray();
        for (var r = 0; r < p.RowCount; r++)
        {
            var (a, d) = (p.Articles[r], p.Days[r]);
            salesAll[a]++;
            if (d >= p.AsOfDay - 28)
                sales28[a]++;
            if (d >= p.AsOfDay - 7)
                sales7[a]++;
            firstDay[a] = Math.Min(firstDay[a], d);
            lastDay[a] = Math.Max(lastDay[a], d);
        }
        (buyers, repeatBuyers) = CountBuyers(p);
        Names = [.. sourceNames.SelectMany(s => new[] { s + "_score", s + "_rank" }), "two_tower_dot", "two_tower_repeat_bias",
            "customer_purchases", "customer_days_since_last", "bought_count", "bought_days_since_last",
            "article_sales_7d", "article_sales_28d", "article_sales_all", "article_days_since_first", "article_days_since_last", "article_repeat_rate"];
    }

    /// <summary>Each article's buyers, and those of them who bought it on two days or more.</summary>
    static (int[] Buyers, int[] RepeatBuyers) CountBuyers(Purchases p)
    {
        var (buyers, repeatBuyers) = (new int[p.ArticleCount], new int[p.ArticleCount]);
        // Stamped with the customer last counted, so that nothing is cleared between customers.
        var (boughtBy, repeatedBy, firstDayOf) = (new int[p.ArticleCount], new int[p.ArticleCount], new int[p.ArticleCount]);
        Array.Fill(boughtBy, -1);
        Array.Fill(repeatedBy, -1);
        for (var c = 0; c < p.CustomerCount; c++)
        {
            var articles = p.ArticlesOf(c);
            var days = p.DaysOf(c);
            for (var i = 0; i < articles.Length; i++)
            {
                var a = articles[i];
                if (boughtBy[a] != c)
                    (boughtBy[a], firstDayOf[a], buyers[a]) = (c, days[i], buyers[a] + 1);
                else if (days[i] != firstDayOf[a] && repeatedBy[a] != c)
                    (repeatedBy[a], repeatBuyers[a]) = (c, repeatBuyers[a] + 1);
            }
        }
        return (buyers, repeatBuyers);
    }

    [ThreadStatic] static int[]? boughtLastDayOfThread;

    /// <summary>This thread's day of the customer's last purchase of each article (read only where the customer bought it).</summary>
    static int[] BoughtLastDayOfThread(int articleCount) =>
        boughtLastDayOfThread is { } days && days.Length >= articleCount ? days : boughtLastDayOfThread = new int[articleCount];

    public IReadOnlyList<string> Names { get; }
    public int Count => Names.Count;

    /// <summary>features[i·Count ..] for each candidate of the customer, in the union's order.</summary>
    public float[] Compute(IModelScorer? model, int customer, IReadOnlyList<UnionCandidate> union)
    {
        var articles = p.ArticlesOf(customer);
        var days = p.DaysOf(customer);
        // How often the customer bought each article, and the last day (rows are in day order): summed in a reused dense table.
        var bought = ArticleScores.ForThread(p.ArticleCount);
        var boughtLastDay = BoughtLastDayOfThread(p.ArticleCount);
        for (var i = 0; i < articles.Length; i++)
        {
            bought.Add(articles[i], 1);
            boughtLastDay[articles[i]] = days[i];
        }
        var customerLast = days.Length > 0 ? p.AsOfDay - days[^1] : Absent;
        var features = new float[union.Count * Count];
        for (var i = 0; i < union.Count; i++)
        {
            var row = features.AsSpan(i * Count, Count);
            var c = union[i];
            var f = 0;
            for (var s = 0; s < c.Scores.Length; s++)
            {
                row[f++] = float.IsNaN(c.Ranks[s]) ? Absent : c.Scores[s];
                row[f++] = float.IsNaN(c.Ranks[s]) ? Absent : c.Ranks[s];
            }
            var a = c.Article;
            var scored = model?.Score(customer, a) ?? ModelScore.None;
            row[f++] = float.IsNaN(scored.Score) ? Absent : scored.Score;
            row[f++] = float.IsNaN(scored.RepeatBias) ? Absent : scored.RepeatBias;
            row[f++] = articles.Length;
            row[f++] = customerLast;
            var count = (float)bought.Get(a);
            row[f++] = count;
            row[f++] = count > 0 ? p.AsOfDay - boughtLastDay[a] : Absent;
            row[f++] = sales7[a];
            row[f++] = sales28[a];
            row[f++] = salesAll[a];
            row[f++] = salesAll[a] > 0 ? p.AsOfDay - firstDay[a] : Absent;
            row[f++] = salesAll[a] > 0 ? p.AsOfDay - lastDay[a] : Absent;
            row[f++] = buyers[a] > 0 ? repeatBuyers[a] / (float)buyers[a] : Absent;
        }
        return features;
    }
}
