using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers.LightGbm;
using TwoTower.Evaluation;
using TwoTower.Model;
using TwoTower.Retrieval;

namespace TwoTower.Tests;

/// <summary>Each candidate source on small random purchases against a brute-force computation over the raw rows, and MAP@12 on hand-computed cases.</summary>
public class RetrievalTests
{
    /// <summary>Random purchases of 40 customers (ids 1..40) over 60 articles (ids 1..60) and 100 days, with repeats.</summary>
    static (int[] Customers, int[] Articles, int[] Days) RandomRows(int seed, int rows = 1500)
    {
        var rng = new Rng((ulong)seed);
        var customers = new int[rows];
        var articles = new int[rows];
        var days = new int[rows];
        for (var r = 0; r < rows; r++)
        {
            customers[r] = 1 + rng.NextInt(40);
            articles[r] = 1 + (rng.NextDouble() < 0.5 ? rng.NextInt(10) : rng.NextInt(60));
            days[r] = 1000 + rng.NextInt(100);
        }
        return (customers, articles, days);
    }

    const int AsOf = 1080;

    static Purchases Build((int[] Customers, int[] Articles, int[] Days) rows) =>
        Purchases.From(rows.Customers, rows.Articles, rows.Days, 41, 61, AsOf);

    /// <summary>The brute-force top list: all scores, best first, ties to the lower article id.</summary>
    static List<int> Top(Dictionary<int, double> scores, int count) =>
        scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key).Take(count).Select(s => s.Key).ToList();

    /// <summary>ArticleScores' sums and top list against a dictionary and a full sort, over rounds that reuse the table (ties included).</summary>
    [Fact]
    public void ArticleScoresTopEqualsAFullSortOfTheSums()
    {
        var rng = new Rng(11);
        var table = new ArticleScores(500);
        var list = new List<Candidate>();
        for (var round = 0; round < 30; round++)
        {
            table.Clear();
            var expected = new Dictionary<int, double>();
            var adds = rng.NextInt(400);
            for (var i = 0; i < adds; i++)
            {
                // Few distinct values, so that ties are common; zero and negative sums included.
                var (article, value) = (rng.NextInt(round % 2 == 0 ? 500 : 40), rng.NextInt(5) - 2.0);
                table.Add(article, value);
                expected[article] = expected.GetValueOrDefault(article) + value;
            }
            var count = 1 + rng.NextInt(60);
            table.Top(count, list);
            Assert.Equal(expected.Count, table.Count);
            Assert.Equal(Top(expected, count), list.Select(c => c.Article).ToList());
            Assert.Equal(list.Select(c => (float)expected[c.Article]), list.Select(c => c.Score));
        }
    }

    [Fact]
    public void PurchasesHoldEachCustomersRowsBeforeTheCutOffInDayOrder()
    {
        var rows = RandomRows(1);
        var p = Build(rows);
        for (var c = 0; c <= 40; c++)
        {
            var expected = Enumerable.Range(0, rows.Customers.Length).Where(r => rows.Customers[r] == c && rows.Days[r] < AsOf)
                .OrderBy(r => rows.Days[r]).ThenBy(r => r).Select(r => (rows.Articles[r], rows.Days[r])).ToArray();
            Assert.Equal(expected, p.ArticlesOf(c).ToArray().Zip(p.DaysOf(c).ToArray()).ToArray());
        }
    }

    [Fact]
    public void BuyAgainScoresPastArticlesByRecencyWeightedCounts()
    {
        var rows = RandomRows(2);
        var source = new BuyAgainSource(Build(rows), count: 5, halfLifeDays: 20);
        var list = new List<Candidate>();
        for (var c = 1; c <= 40; c++)
        {
            var scores = new Dictionary<int, double>();
            for (var r = 0; r < rows.Customers.Length; r++)
            {
                if (rows.Customers[r] == c && rows.Days[r] < AsOf)
                    scores[rows.Articles[r]] = scores.GetValueOrDefault(rows.Articles[r]) + Math.Pow(0.5, (AsOf - rows.Days[r]) / 20.0);
            }
            source.Candidates(c, list);
            Assert.Equal(Top(scores, 5), list.Select(x => x.Article).ToList());
        }
    }

    [Fact]
    public void RecentPopularityCountsTheWindowPerSegmentAndTopsUpFromEveryone()
    {
        var rows = RandomRows(3);
        var segments = Enumerable.Range(0, 41).Select(c => c == 0 ? -1 : c % 3).ToArray();
        var source = new PopularitySource(Build(rows), count: 8, windowDays: 30, halfLifeDays: 10, segments);
        Dictionary<int, double> Scores(Func<int, bool> customer)
        {
            var scores = new Dictionary<int, double>();
            for (var r = 0; r < rows.Customers.Length; r++)
            {
                if (customer(rows.Customers[r]) && rows.Days[r] < AsOf && rows.Days[r] >= AsOf - 30)
                    scores[rows.Articles[r]] = scores.GetValueOrDefault(rows.Articles[r]) + Math.Pow(0.5, (AsOf - rows.Days[r]) / 10.0);
            }
            return scores;
        }
        var overall = Top(Scores(_ => true), 8);
        var list = new List<Candidate>();
        foreach (var c in new[] { 1, 2, 3 })
        {
            var own = Top(Scores(x => x % 3 == c % 3), 8);
            source.Candidates(c, list);
            Assert.Equal(own.Concat(overall.Where(a => !own.Contains(a))).Take(8).ToList(), list.Select(x => x.Article).ToList());
        }
        source.Candidates(0, list);   // no segment: the overall list
        Assert.Equal(overall, list.Select(x => x.Article).ToList());
    }

    [Fact]
    public void CoPurchaseNeighboursAreConditionalPairRatesOfCustomers()
    {
        var rows = RandomRows(4);
        var p = Build(rows);
        var table = CoPurchase.Neighbours(p, windowDays: 10, neighbours: 4, CoPurchase.Weighting.Conditional);
        var source = new NeighbourSource("co_purchase", p, count: 6, recentArticles: 3, halfLifeDays: 15, table);

        // Brute force over each customer's rows in day order: pairs (i, j), i ≠ j, at most 30 rows and 10 days apart, once per customer.
        var pairCustomers = new Dictionary<(int, int), HashSet<int>>();
        var buyers = new Dictionary<int, HashSet<int>>();
        for (var c = 1; c <= 40; c++)
        {
            var a = p.ArticlesOf(c).ToArray();
            var d = p.DaysOf(c).ToArray();
            for (var x = 0; x < a.Length; x++)
            {
                buyers.TryAdd(a[x], []);
                buyers[a[x]].Add(c);
                for (var y = x + 1; y < a.Length && y <= x + 30 && d[y] - d[x] <= 10; y++)
                {
                    if (a[x] == a[y])
                        continue;
                    foreach (var pair in new[] { (a[x], a[y]), (a[y], a[x]) })
                    {
                        pairCustomers.TryAdd(pair, []);
                        pairCustomers[pair].Add(c);
                    }
                }
            }
        }
        for (var i = 1; i <= 60; i++)
        {
            var expected = pairCustomers.Where(kv => kv.Key.Item1 == i).OrderByDescending(kv => kv.Value.Count).ThenBy(kv => kv.Key.Item2).Take(4)
                .Select(kv => (kv.Key.Item2, kv.Value.Count / (float)buyers[i].Count)).ToArray();
            var actual = Enumerable.Range(table.Start[i], table.Start[i + 1] - table.Start[i]).Select(n => (table.Articles[n], table.Weights[n])).ToArray();
            Assert.Equal(expected, actual);
        }

        var list = new List<Candidate>();
        for (var c = 1; c <= 40; c++)
        {
            var a = p.ArticlesOf(c).ToArray();
            var d = p.DaysOf(c).ToArray();
            var scores = new Dictionary<int, double>();
            var used = new HashSet<int>();
            for (var x = a.Length - 1; x >= 0 && used.Count < 3; x--)
            {
                if (!used.Add(a[x]))
                    continue;
                var weight = Math.Pow(0.5, (AsOf - d[x]) / 15.0);
                for (var n = table.Start[a[x]]; n < table.Start[a[x] + 1]; n++)
                    scores[table.Articles[n]] = scores.GetValueOrDefault(table.Articles[n]) + weight * table.Weights[n];
            }
            source.Candidates(c, list);
            Assert.Equal(Top(scores, 6), list.Select(x => x.Article).ToList());
        }
    }

    /// <summary>Distinct customers of each article before the cut-off: the article's binary column of X.</summary>
    static Dictionary<int, HashSet<int>> CustomersOf((int[] Customers, int[] Articles, int[] Days) rows)
    {
        var customers = new Dictionary<int, HashSet<int>>();
        for (var r = 0; r < rows.Customers.Length; r++)
        {
            if (rows.Days[r] < AsOf)
                (customers.TryGetValue(rows.Articles[r], out var set) ? set : customers[rows.Articles[r]] = []).Add(rows.Customers[r]);
        }
        return customers;
    }

    /// <summary>The brute-force scores of a binary customer row: Σ over their distinct articles i of weight(i, j).</summary>
    static Dictionary<int, double> RowScores(IEnumerable<int> articles, Func<int, IEnumerable<(int J, double Weight)>> weights)
    {
        var scores = new Dictionary<int, double>();
        foreach (var i in articles.Distinct())
        foreach (var (j, w) in weights(i))
            scores[j] = scores.GetValueOrDefault(j) + w;
        return scores;
    }

    [Fact]
    public void ItemKnnNeighboursAreCosinesOfTheArticlesCustomerColumns()
    {
        var rows = RandomRows(5, rows: 500);   // about 10 purchases per customer: under the 30-apart pairing bound, so every co-occurrence counts
        var p = Build(rows);
        var table = CoPurchase.Neighbours(p, int.MaxValue, neighbours: 5, CoPurchase.Weighting.Cosine);
        var source = new NeighbourSource("item_knn", p, count: 8, int.MaxValue, double.PositiveInfinity, table);

        var columns = CustomersOf(rows);
        (int J, float Cosine, int Both)[] Expected(int i) => columns.Keys.Where(j => j != i && columns.ContainsKey(i))
            .Select(j => (J: j, Both: columns[i].Intersect(columns[j]).Count()))
            .Where(x => x.Both > 0)
            .Select(x => (x.J, Cosine: (float)(x.Both / Math.Sqrt((double)columns[i].Count * columns[x.J].Count)), x.Both))
            .OrderByDescending(x => x.Cosine).ThenByDescending(x => x.Both).ThenBy(x => x.J).Take(5).ToArray();
        for (var i = 1; i <= 60; i++)
        {
            var actual = Enumerable.Range(table.Start[i], table.Start[i + 1] - table.Start[i]).Select(n => (table.Articles[n], table.Weights[n])).ToArray();
            Assert.Equal(Expected(i).Select(x => (x.J, x.Cosine)), actual);
        }
        var list = new List<Candidate>();
        for (var c = 1; c <= 40; c++)
        {
            var mine = Enumerable.Range(0, rows.Customers.Length).Where(r => rows.Customers[r] == c && rows.Days[r] < AsOf).Select(r => rows.Articles[r]);
            var expected = Top(RowScores(mine, i => Expected(i).Select(x => (x.J, (double)x.Cosine))), 8);
            source.Candidates(c, list);
            Assert.Equal(expected, list.Select(x => x.Article).ToList());
        }
    }

    /// <summary>Plain Gauss–Jordan inverse in float64 (the test's own, independent of MathNet).</summary>
    static double[,] Inverse(double[,] a)
    {
        var n = a.GetLength(0);
        var m = new double[n, 2 * n];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++)
                m[i, j] = a[i, j];
            m[i, n + i] = 1;
        }
        for (var col = 0; col < n; col++)
        {
            var pivot = Enumerable.Range(col, n - col).MaxBy(r => Math.Abs(m[r, col]));
            for (var j = 0; j < 2 * n; j++)
                (m[col, j], m[pivot, j]) = (m[pivot, j], m[col, j]);
            var d = m[col, col];
            for (var j = 0; j < 2 * n; j++)
                m[col, j] /= d;
            for (var r = 0; r < n; r++)
            {
                if (r == col)
                    continue;
                var f = m[r, col];
                for (var j = 0; j < 2 * n; j++)
                    m[r, j] -= f * m[col, j];
            }
        }
        var inverse = new double[n, n];
        for (var i = 0; i < n; i++)
        for (var j = 0; j < n; j++)
            inverse[i, j] = m[i, n + j];
        return inverse;
    }

    /// <summary>Purchases as of a day before any of them: EASE has no articles to model and proposes nothing.</summary>
    [Fact]
    public void EaseOfNoPurchasesProposesNothing()
    {
        var p = Purchases.From([1, 2], [5, 6], [90, 95], customerCount: 3, articleCount: 8, asOfDay: 10);
        var source = new NeighbourSource("ease", p, count: 6, int.MaxValue, double.PositiveInfinity, Ease.Neighbours(p, 12, 10, neighbours: 11));
        var list = new List<Candidate> { new(1, 1) };

        source.Candidates(1, list);

        Assert.Empty(list);
    }

    [Fact]
    public void EaseWeightsSatisfyTheClosedFormAgainstAFloat64Reference()
    {
        var rows = RandomRows(6, rows: 400);
        var p = Build(rows);
        const double lambda = 3.0;
        var articles = Ease.MostBought(p, 12);
        var columns = CustomersOf(rows);
        // Plain loops: G = XᵀX over the 12 articles, its regularized inverse, B = I − P·diag(1/diag P).
        var n = articles.Length;
        var g = new double[n, n];
        for (var x = 0; x < n; x++)
        for (var y = 0; y < n; y++)
            g[x, y] = columns[articles[x]].Intersect(columns[articles[y]]).Count();
        var regularized = (double[,])g.Clone();
        for (var x = 0; x < n; x++)
            regularized[x, x] += lambda;
        var inverse = Inverse(regularized);

        Assert.Equal(g, Ease.Gram(p, articles).ToArray());
        var b = Ease.Weights(Ease.Gram(p, articles), lambda);
        for (var i = 0; i < n; i++)
        {
            Assert.Equal(0.0, b[i, i]);
            for (var j = 0; j < n; j++)
            {
                if (i != j)
                    Assert.Equal(-inverse[i, j] / inverse[j, j], b[i, j], 1e-12);
            }
        }
        // The closed form: (G + λI)(I − B) = diag(1 / diag P): zero off the diagonal.
        for (var i = 0; i < n; i++)
        for (var j = 0; j < n; j++)
        {
            var product = Enumerable.Range(0, n).Sum(k => regularized[i, k] * ((k == j ? 1 : 0) - b[k, j]));
            Assert.Equal(i == j ? 1 / inverse[j, j] : 0, product, 1e-9);
        }

        // With every weight kept, the source's scores are x_u·B over the modelled articles.
        var source = new NeighbourSource("ease", p, count: 6, int.MaxValue, double.PositiveInfinity, Ease.Neighbours(p, 12, lambda, neighbours: 11));
        var list = new List<Candidate>();
        for (var c = 1; c <= 40; c++)
        {
            var mine = Enumerable.Range(0, rows.Customers.Length).Where(r => rows.Customers[r] == c && rows.Days[r] < AsOf)
                .Select(r => Array.IndexOf(articles, rows.Articles[r])).Where(k => k >= 0);
            var scores = RowScores(mine, i => Enumerable.Range(0, n).Where(j => j != i).Select(j => (articles[j], (double)(float)(-inverse[i, j] / inverse[j, j]))));
            source.Candidates(c, list);
            Assert.Equal(Top(scores, 6), list.Select(x => x.Article).ToList());
        }
    }

    /// <summary>The ranker's features on a hand-made history, each against its plain definition.</summary>
    [Fact]
    public void BlendFeaturesFollowTheirDefinitions()
    {
        // Customer 1 bought article 5 on days 90 and 98 and article 6 on day 70; customer 2 bought article 6 twice
        // on day 80 and article 5 on day 95. As of day 100.
        var p = Purchases.From([1, 1, 1, 2, 2, 2], [5, 6, 5, 6, 6, 5], [90, 70, 98, 80, 80, 95], customerCount: 3, articleCount: 8, asOfDay: 100);
        var features = new BlendFeatures(p, ["a", "b"]);
        UnionCandidate[] union = [new(5, [0.5f, float.NaN], [1, float.NaN]), new(7, [float.NaN, 2f], [float.NaN, 3])];
        var x = features.Compute(null, 1, union);
        var names = features.Names;
        float At(int row, string name) => x[row * features.Count + names.ToList().IndexOf(name)];
        var absent = BlendFeatures.Absent;
        Assert.Equal([0.5f, 1, absent, absent], new[] { At(0, "a_score"), At(0, "a_rank"), At(0, "b_score"), At(0, "b_rank") });
        Assert.Equal([absent, absent, 2f, 3], new[] { At(1, "a_score"), At(1, "a_rank"), At(1, "b_score"), At(1, "b_rank") });
        Assert.Equal(absent, At(0, "two_tower_dot"));   // no model
        Assert.Equal(absent, At(0, "two_tower_repeat_bias"));
        Assert.Equal(3, At(0, "customer_purchases"));
        Assert.Equal(2, At(0, "customer_days_since_last"));   // day 98
        Assert.Equal(2, At(0, "bought_count"));
        Assert.Equal(2, At(0, "bought_days_since_last"));
        Assert.Equal(0, At(1, "bought_count"));
        Assert.Equal(absent, At(1, "bought_days_since_last"));
        Assert.Equal(2, At(0, "article_sales_7d"));    // days 95 and 98 (≥ 93)
        Assert.Equal(3, At(0, "article_sales_28d"));   // days 90, 95, 98 (≥ 72)
        Assert.Equal(3, At(0, "article_sales_all"));
        Assert.Equal(10, At(0, "article_days_since_first"));
        Assert.Equal(2, At(0, "article_days_since_last"));
        Assert.Equal(0, At(1, "article_sales_all"));
        Assert.Equal(absent, At(1, "article_days_since_first"));
        Assert.Equal(0.5f, At(0, "article_repeat_rate"));   // article 5: customer 1 bought it on two days, customer 2 on one
        Assert.Equal(absent, At(1, "article_repeat_rate"));   // article 7: no buyer
        Assert.DoesNotContain(x, float.IsNaN);

        // Customer 2's own last purchase of article 5 (day 95) is not the article's last sale (day 98).
        var y = features.Compute(null, 2, union);
        float Of2(string name) => y[names.ToList().IndexOf(name)];
        Assert.Equal(1, Of2("bought_count"));
        Assert.Equal(5, Of2("bought_days_since_last"));
        Assert.Equal(2, Of2("article_days_since_last"));
        Assert.Equal(5, Of2("customer_days_since_last"));
        Assert.Equal(0.5f, Of2("article_repeat_rate"));   // the article's, the same for every customer

        // Article 6: two buyers, neither on two days (customer 2's two purchases were on one day).
        UnionCandidate[] six = [new(6, [1f, float.NaN], [1, float.NaN])];
        Assert.Equal(0, features.Compute(null, 2, six)[names.ToList().IndexOf("article_repeat_rate")]);

        // With a model: its score and the repeat bias's share; an article it cannot score is absent in both.
        var z = features.Compute(new FixedScorer(), 1, union);
        Assert.Equal([1.5f, 0.25f], new[] { z[names.ToList().IndexOf("two_tower_dot")], z[names.ToList().IndexOf("two_tower_repeat_bias")] });
        Assert.Equal([absent, absent], new[] { z[features.Count + names.ToList().IndexOf("two_tower_dot")], z[features.Count + names.ToList().IndexOf("two_tower_repeat_bias")] });
    }

    sealed class FixedScorer : IModelScorer
    {
        public ModelScore Score(int customer, int article) => article == 5 ? new ModelScore(1.5f, 0.25f) : ModelScore.None;
    }

    /// <summary>The model's score with the repeat bias, by hand: q·c plus the biases of the slots that hold the article, and that share alone.</summary>
    [Fact]
    public void RepeatScoreIsTheDotProductPlusTheBiasOfTheSlotsHoldingTheArticle()
    {
        float[] query = [1, 2];
        float[] embeddings = [3, 0, 0.5f, 1];   // row 0: (3, 0) · q = 3; row 1: (0.5, 1) · q = 2.5
        int[] history = [1, -1, 1, 0];
        float[] bias = [0.5f, 9, 0.25f, -1];
        Assert.Equal(new ModelScore(2.5f + 0.75f, 0.75f), RepeatScores.Score(query, embeddings, 2, 1, history, bias));   // slots 0 and 2
        Assert.Equal(new ModelScore(3 - 1, -1), RepeatScores.Score(query, embeddings, 2, 0, history, bias));
        Assert.Equal(new ModelScore(3, 0), RepeatScores.Score(query, embeddings, 2, 0, [], []));   // no bias: the dot product
    }

    [Fact]
    public void AveragePrecisionAt12OnHandComputedCases()
    {
        // Basket {1, 2, 3}; hits at ranks 1 and 3: (1/1 + 2/3) / 3.
        Assert.Equal((1.0 + 2.0 / 3) / 3, BasketMetrics.AveragePrecision([1, 9, 2, 8], new HashSet<int> { 1, 2, 3 }), 12);
        // A repeated prediction counts once: [5, 5, 6] for {5, 6} is (1/1 + 2/3) / 2.
        Assert.Equal((1.0 + 2.0 / 3) / 2, BasketMetrics.AveragePrecision([5, 5, 6], new HashSet<int> { 5, 6 }), 12);
        // More than 12 bought: the denominator is 12; only the first 12 predictions count.
        var basket = Enumerable.Range(1, 20).ToHashSet();
        Assert.Equal(1.0, BasketMetrics.AveragePrecision(Enumerable.Range(1, 20).ToList(), basket), 12);
        Assert.Equal(0.0, BasketMetrics.AveragePrecision(Enumerable.Range(100, 12).Append(1).ToList(), basket), 12);
        Assert.Equal(0.0, BasketMetrics.AveragePrecision([], new HashSet<int> { 1 }), 12);
    }

    [Fact]
    public void BasketMetricsAverageOverCustomersWithAPurchase()
    {
        var baskets = new Dictionary<int, HashSet<int>> { [1] = [10, 11], [2] = [20] };
        (int, int)[] rows = [(1, 10), (1, 11), (1, 10), (2, 20)];
        var lists = new Dictionary<int, IReadOnlyList<int>> { [1] = [11, 99], [2] = [98, 97, 20] };
        var r = BasketMetrics.Compute("m", baskets, rows, c => lists[c], [1, 2, 3]);
        Assert.Equal(2, r.Customers);
        Assert.Equal(((1.0 / 1) / 2 + (1.0 / 3) / 1) / 2, r.Map12, 12);
        Assert.Equal((0.5 + 0) / 2, r.RecallAt[1], 12);
        Assert.Equal((0.5 + 1) / 2, r.RecallAt[3], 12);
        Assert.Equal(2.0 / 4, r.RowHitAt100, 12);   // rows (1, 11) and (2, 20) are in their lists; (1, 10) twice is not
    }
}

public class BlendRankerTests
{
    /// <summary>600 rows of 5 features (a tenth of them absent) in groups of 20, a label that depends on the first feature.</summary>
    static (float[] X, float[] Labels, int[] Groups) RankingRows(int features = 5, int rows = 600)
    {
        var rng = new Rng(9);
        var x = new float[rows * features];
        var labels = new float[rows];
        var groups = new int[rows];
        for (var r = 0; r < rows; r++)
        {
            for (var f = 0; f < features; f++)
                x[r * features + f] = rng.NextDouble() < 0.1 ? BlendFeatures.Absent : (float)rng.NextDouble();
            labels[r] = x[r * features] + 0.3 * rng.NextDouble() > 0.8 ? 1 : 0;
            groups[r] = r / 20;
        }
        return (x, labels, groups);
    }

    static BlendRanker.Settings Settings(int trees) => new(Trees: trees, Leaves: 8, LearningRate: 0.1, MinRowsInLeaf: 5, Seed: 1);

    /// <summary>What `read` makes of the ranker saved to a temporary file (deleted afterwards).</summary>
    static T FromSaved<T>(BlendRanker ranker, Func<string, T> read)
    {
        var path = Path.GetTempFileName();
        try
        {
            ranker.Save(path);
            return read(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A saved ranker as ML.NET itself loads it.</summary>
    static ITransformer MlNetModel(string path)
    {
        using var stream = File.OpenRead(path);
        return new MLContext(0).Model.Load(stream, out _);
    }

    /// <summary>ML.NET's own scoring pipeline on a saved ranker.</summary>
    static float[] MlNetScores(BlendRanker ranker, float[] x, int features) => FromSaved(ranker, path =>
    {
        var data = new MLContext(0).Data.LoadFromEnumerable(Enumerable.Range(0, x.Length / features).Select(r => new MlRow
        {
            Features = x.AsSpan(r * features, features).ToArray(),
        }), MlRow.Schema(features));
        return MlNetModel(path).Transform(data).GetColumn<float>("Score").ToArray();
    });

    /// <summary>The ranker's own tree walk scores exactly as ML.NET's scoring pipeline on the saved model, absent features included.</summary>
    [Fact]
    public void TreeWalkScoresEqualMlNetScores()
    {
        var (x, labels, groups) = RankingRows();
        var ranker = BlendRanker.Train(x, 5, labels, groups, Settings(20));
        var actual = FromSaved(ranker, path => BlendRanker.Load(path, 5).Score(x));
        Assert.Equal(MlNetScores(ranker, x, 5), actual);
        Assert.True(actual.Distinct().Count() > 10, "the ranker learnt something");
    }

    /// <summary>
    /// The scores by the first 10 trees of a 20-tree ranker are ML.NET's scores of a 10-tree ranker
    /// fitted on the same rows (boosting builds the same first trees), and the last prefix is Score's.
    /// </summary>
    [Fact]
    public void ScoresByTreeCountArePrefixesOfTheEnsemble()
    {
        var (x, labels, groups) = RankingRows();
        var ranker = BlendRanker.Train(x, 5, labels, groups, Settings(20));
        var prefixes = ranker.ScoresByTreeCount(x, 10);
        Assert.Equal([10, 20], prefixes.Select(p => p.Trees));
        Assert.Equal(MlNetScores(BlendRanker.Train(x, 5, labels, groups, Settings(10)), x, 5), prefixes[0].Scores);
        Assert.Equal(ranker.Score(x), prefixes[1].Scores);
        Assert.NotEqual(prefixes[0].Scores, prefixes[1].Scores);
    }

    /// <summary>
    /// The gain shares agree with ML.NET's own feature weights, which it computes from the same
    /// trees as the square root of each feature's summed split gain, scaled: their squares, over
    /// their sum. The first feature, the only one the label depends on, carries most of the gain.
    /// </summary>
    [Fact]
    public void GainSharesAreTheSquaresOfMlNetsFeatureWeightsScaled()
    {
        var (x, labels, groups) = RankingRows();
        var ranker = BlendRanker.Train(x, 5, labels, groups, Settings(20));
        var weights = FromSaved(ranker, path =>
        {
            var chain = (IEnumerable<ITransformer>)MlNetModel(path);
            var buffer = default(VBuffer<float>);
            ((RankingPredictionTransformer<LightGbmRankingModelParameters>)chain.Last()).Model.GetFeatureWeights(ref buffer);
            return buffer;
        });
        var squares = weights.DenseValues().Select(w => (double)w * w).ToArray();
        var shares = ranker.GainShares();
        Assert.Equal(5, squares.Length);
        for (var f = 0; f < 5; f++)
            Assert.Equal(squares[f] / squares.Sum(), shares[f], 6);
        Assert.Equal(1.0, shares.Sum(), 9);
        Assert.True(shares[0] > 0.8, $"the label's feature has {shares[0]:F3} of the gain");
    }

    sealed class MlRow
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
        public uint Group { get; set; }

        public static SchemaDefinition Schema(int features)
        {
            var schema = SchemaDefinition.Create(typeof(MlRow));
            schema[nameof(Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features);
            return schema;
        }
    }
}
