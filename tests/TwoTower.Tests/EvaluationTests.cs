using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;
using TwoTower.Model;

using TwoTower.Tests.Kernels;

namespace TwoTower.Tests;

public class EvaluationTests
{
    [Theory]
    [InlineData(1, 37, 300, 16)]
    [InlineData(2, 130, 2000, 16)]
    [InlineData(2, 20, 77, 5)]
    [InlineData(2, 21, 150, 40)]
    public void CountScoresAboveMatchesABruteForceSort(int threads, int queries, int candidates, int dim)
    {
        var q = Reference.Random(queries * dim, 21);
        // Rounded values so that many scores tie exactly.
        var c = Reference.Random(candidates * dim, 22).Select(v => MathF.Round(v * 2) / 2).ToArray();
        // Half the positives are an exact copy of a candidate (must tie with it), half are arbitrary; the last is NaN.
        var positives = new float[queries * dim];
        var arbitrary = Reference.Random(queries * dim, 23);
        for (var i = 0; i < queries; i++)
        {
            var source = i % 2 == 0 ? c.AsSpan(i % candidates * dim, dim) : arbitrary.AsSpan(i * dim, dim);
            source.CopyTo(positives.AsSpan(i * dim, dim));
        }
        positives[^1] = float.NaN;
        var counts = Enumerable.Repeat(-2, queries).ToArray();
        new ArrayOps(new SimdKernels(threads)).CountScoresAbove(q, queries, c, candidates, dim, positives, counts);
        for (var i = 0; i < queries - 1; i++)
        {
            var threshold = Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * positives[i * dim + d]);
            var scores = Enumerable.Range(0, candidates)
                .Select(j => Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]))
                .OrderDescending().ToArray();
            // Brute force: position of the positive's score in the sorted scores, ties not counted.
            var expected = scores.Count(s => s > threshold + 1e-5);
            var ambiguous = scores.Count(s => Math.Abs(s - threshold) <= 1e-5);
            Assert.InRange(counts[i], expected, expected + ambiguous);
            if (i % 2 == 0)
                Assert.True(counts[i] <= expected + ambiguous - 1, "the positive's own copy must tie, not count");
        }
        Assert.Equal(-1, counts[^1]);
    }

    [Fact]
    public void HitAtKCountsStrictlyHigherCandidatesAndNaNIsAMiss()
    {
        // Queries q = (1, 0); candidates score 3, 2, 2, 1. Positives score 2 (ties with two candidates),
        // 0.5 (below every candidate, e.g. an article outside the catalogue) and NaN (the third query is NaN).
        float[] q = [1, 0, 1, 0, float.NaN, 0];
        float[] candidates = [3, 0, 2, 0, 2, 0, 1, 0];
        float[] positives = [2, 0, 0.5f, 0, 1, 0];
        var counts = new int[3];
        new ArrayOps(new SimdKernels(1)).CountScoresAbove(q, 3, candidates, 4, 2, positives, counts);
        Assert.Equal([1, 4, -1], counts);
        long[] ranks = [counts[0] + 1, counts[1] + 1, RankMetrics.Miss];
        var result = RankMetrics.Compute(ranks, [1, 2, 5, 100]);
        Assert.Equal(0, result.HitAt[1]);
        Assert.Equal(1 / 3.0, result.HitAt[2], 12);
        // k larger than the catalogue: rank 5 of 4 candidates is a hit at 5, the NaN row never is.
        Assert.Equal(2 / 3.0, result.HitAt[5], 12);
        Assert.Equal(2 / 3.0, result.HitAt[100], 12);
        Assert.Equal((1 / 2.0 + 1 / 5.0) / 3, result.Mrr, 12);
        Assert.Equal(1 / Math.Log2(3) / 3, result.NdcgAt[2], 12);
    }

    [Fact]
    public void PopularityAndBuyAgainRanksOnAHandMadeCase()
    {
        // Items: 1 bought 3×, 2 bought 2×, 3 bought 1×, 4 bought 2× (after 2: ties by first appearance).
        int[] trainItems = [1, 2, 1, 3, 1, 2, 4, 4];
        int[] trainCustomers = [7, 7, 8, 8, 8, 9, 7, 7];
        var popularity = Baselines.PopularityRanks(trainItems, 6);
        Assert.Equal(1, popularity[1]);
        Assert.Equal(2, popularity[2]);
        Assert.Equal(3, popularity[4]);
        Assert.Equal(4, popularity[3]);
        Assert.Equal(RankMetrics.Miss, popularity[5]);
        Assert.Equal(RankMetrics.Miss, popularity[0]);

        // Customer 7 bought 4 twice (latest), 1 once, 2 once (2 later than 1): own list [4, 2, 1].
        int[] valCustomers = [7, 7, 7, 0, 8];
        int[] valItems = [4, 1, 3, 1, 2];
        var ranks = Baselines.BuyAgainRanks(trainCustomers, trainItems, valCustomers, valItems, popularity);
        Assert.Equal(1, ranks[0]);
        Assert.Equal(3, ranks[1]);
        Assert.Equal(4, ranks[2]);   // padded with popularity: 1, 2, 4 skipped, then 3.
        Assert.Equal(1, ranks[3]);   // an out-of-vocabulary customer gets the popularity list.
        Assert.Equal(3, ranks[4]);   // customer 8's list [1, 3], then popularity without them: 2.
    }

    [Fact]
    public void RandomBaselineIsTheExpectationOverUniformRankings()
    {
        var result = RankMetrics.RandomExpected(4, 0.5, 10, [1, 2, 10]);
        Assert.Equal(0.5 * 1 / 4, result.HitAt[1], 12);
        Assert.Equal(0.5 * 2 / 4, result.HitAt[2], 12);
        Assert.Equal(0.5, result.HitAt[10], 12);
        Assert.Equal(0.5 * (1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0) / 4, result.Mrr, 12);
    }

    [Fact]
    public void ModelRanksGiveOutOfVocabularyCustomersTheOovEmbeddingAndPositivesOutsideTheCatalogueStillRank()
    {
        var config = TrainingTests.Config("train.batch_size=32");
        var model = TwoTowerModel.Create(config, TrainingTests.TinyVocabulary);
        model.Initialize(1);
        var train = TrainingTests.TinyData(200, seed: 4);
        var val = TrainingTests.TinyData(50, seed: 6);
        val.Ints["customer_id"][0] = 0;
        val.Ints["article_id"][1] = 0;
        var features = Data.FeatureSet.From(config);
        var ranks = CatalogueRanks.Compute(model, new SimdKernels(2), train, val, features, out var catalogue);
        Assert.Equal(train.Ints["article_id"].Distinct().Count(), catalogue);
        Assert.All(ranks, r => Assert.InRange(r, 1, catalogue + 1));
        // Independent check of one row: rank = 1 + candidates scoring strictly above, by brute force in float64.
        var q = TwoTowerModel.Embed(model.Query, new SimdKernels(1), val, [0]);
        var pos = TwoTowerModel.Embed(model.Candidate, new SimdKernels(1), val, [0]);
        var firstRows = train.Ints["article_id"].Select((item, row) => (item, row)).GroupBy(x => x.item).Select(g => g.First().row).ToArray();
        var cands = TwoTowerModel.Embed(model.Candidate, new SimdKernels(1), train, firstRows);
        var s = Enumerable.Range(0, 16).Sum(d => (double)q[d] * pos[d]);
        var above = Enumerable.Range(0, firstRows.Length).Count(j => Enumerable.Range(0, 16).Sum(d => (double)q[d] * cands[j * 16 + d]) > s + 1e-6);
        Assert.InRange(ranks[0], above + 1, above + 2);
    }

    /// <summary>
    /// With the repeat bias, a candidate in the row's history scores its dot product plus its slots'
    /// biases (the positive too); with an exclusion list, the row's history articles (but the
    /// positive) leave its ranking. Every rank against a float64 brute force over the whole catalogue.
    /// </summary>
    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void ModelRanksWithTheRepeatBiasAndExclusionsMatchABruteForceCount(bool repeatBias, bool exclude)
    {
        const int length = 3;
        var config = TrainingTests.Config("features.query.history.length=3", $"features.query.history.repeat_bias={repeatBias}");
        var model = TwoTowerModel.Create(config, TrainingTests.TinyVocabulary);
        model.Initialize(1);
        float[] bias = repeatBias ? [0.3f, -0.2f, 0.05f] : [0, 0, 0];
        if (repeatBias)
            bias.CopyTo(model.RepeatBias!.Value, 0);
        var train = TrainingTests.TinyData(200, seed: 4);
        var val = TrainingTests.WithHistory(TrainingTests.TinyData(60, seed: 6), length);
        var history = val.Ints[Data.PurchaseHistory.Column];
        var valArticles = val.Ints["article_id"];
        Assert.Contains(Enumerable.Range(0, val.RowCount), r => history.AsSpan(r * length, length).Contains(valArticles[r]));   // some positives are repeats
        Assert.Contains(Enumerable.Range(0, val.RowCount), r => history.AsSpan(r * length, length).ToArray().Where(a => a >= 0).Distinct().Count()
            < history.AsSpan(r * length, length).ToArray().Count(a => a >= 0));   // some histories hold an article twice
        var ranks = CatalogueRanks.Compute(model, new SimdKernels(2), train, val, Data.FeatureSet.From(config), out _,
            exclude ? history : null, exclude ? length : 0);

        var articles = train.Ints["article_id"].Distinct().ToArray();
        var firstRows = articles.Select(a => Array.IndexOf(train.Ints["article_id"], a)).ToArray();
        var candidates = TwoTowerModel.Embed(model.Candidate, new SimdKernels(1), train, firstRows);
        var queries = TwoTowerModel.Embed(model.Query, new SimdKernels(1), val, Enumerable.Range(0, val.RowCount).ToArray());
        var positives = TwoTowerModel.Embed(model.Candidate, new SimdKernels(1), val, Enumerable.Range(0, val.RowCount).ToArray());
        for (var r = 0; r < val.RowCount; r++)
        {
            // Every slot that holds the article adds its bias (the random histories repeat articles).
            double Bias(int article) => Enumerable.Range(0, length).Where(s => history[r * length + s] == article).Sum(s => (double)bias[s]);
            double Dot(float[] vectors, int row) => Enumerable.Range(0, 16).Sum(d => (double)queries[r * 16 + d] * vectors[row * 16 + d]);
            var positive = Dot(positives, r) + Bias(valArticles[r]);
            var ranked = Enumerable.Range(0, articles.Length)
                .Where(j => !exclude || articles[j] == valArticles[r] || !history.AsSpan(r * length, length).Contains(articles[j])).ToArray();
            var scores = ranked.Select(j => Dot(candidates, j) + Bias(articles[j])).ToArray();
            // Strictly above by more than rounding, and above allowing for it (the positive's own article among them).
            Assert.InRange(ranks[r] - 1, scores.Count(s => s > positive + 1e-5), scores.Count(s => s > positive - 1e-5));
        }
    }
}
