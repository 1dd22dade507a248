using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TwoTower.Data;
using TwoTower.Kernels.Simd;
using TwoTower.Model;
using TwoTower.Retrieval;
using TwoTower.Serving;

namespace TwoTower.Tests;

/// <summary>
/// The small pipeline with a history of 5 articles, recency-weighted, through the shared article
/// table, with the repeat bias; the blend learns from a model trained before its label days.
/// </summary>
public sealed class HistoryPackagedPipeline() : PackagedPipeline(
    ["features.query.history.length=5", "features.query.history.pooling=recency", "features.query.history.share_embedding=true",
     "features.query.history.repeat_bias=true", "blend.retrain_model=true"]);

/// <summary>History reaches the package, the ONNX query tower and the Recommender (the packaged history and a request's own).</summary>
public class HistoryPackageTests(HistoryPackagedPipeline pipeline) : IClassFixture<HistoryPackagedPipeline>
{
    const int Length = 5;

    [Fact]
    public void OnnxQueryTowerTakesTheHistoryAndMatchesTheDotNetForwardPass()
    {
        var model = TrainedModel.Load(pipeline.Store, pipeline.Config);
        var val = TrainingColumns.Read(pipeline.Store, "val");
        var history = val.Ints[PurchaseHistory.Column];
        var rows = Enumerable.Range(0, val.RowCount).Where(r => r % 7 == 0).Take(64).ToArray();
        Assert.Contains(rows, r => history[r * Length] >= 0);
        Assert.Contains(rows, r => history[r * Length] < 0);   // an empty history is a valid input too
        var expected = TwoTowerModel.Embed(model.Query, new SimdKernels(1), val, rows);
        var stats = NormalizationStats.ReadAll(pipeline.PackageDir);
        using var session = new InferenceSession(Path.Combine(pipeline.PackageDir, PackageLayout.QueryTowerFile));
        var inputs = model.Query.Inputs.Select(i => i.Feature.Kind switch
        {
            FeatureKind.History => NamedOnnxValue.CreateFromTensor(i.Feature.Column,
                new DenseTensor<long>(rows.SelectMany(r => history.AsSpan(r * Length, Length).ToArray()).Select(id => (long)id).ToArray(), [rows.Length, Length])),
            _ when i.Feature.IsCategorical => NamedOnnxValue.CreateFromTensor(i.Feature.Column,
                new DenseTensor<long>(rows.Select(r => (long)val.Ints[i.Feature.Column][r]).ToArray(), [rows.Length])),
            _ => NamedOnnxValue.CreateFromTensor(i.Feature.Column, new DenseTensor<float>(rows.Select(r =>
            {
                var s = stats[i.Feature.Column];
                var x = val.Floats[i.Feature.Column][r];
                return s.Normalized ? (float)(x * s.Std + s.Mean) : x;
            }).ToArray(), [rows.Length])),
        }).ToList();
        using var results = session.Run(inputs);
        var actual = results.First().AsTensor<float>().ToArray();
        var worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst < 1e-5, $"max abs difference {worst}");
    }

    /// <summary>customers.parquet's history slots against each customer's training purchases read from Normalize's table, latest first.</summary>
    [Fact]
    public void PackagedHistoryIsEachCustomersLatestDistinctTrainingArticles()
    {
        var train = TrainingColumns.Read(pipeline.Store, "train");
        var (customers, articles, days) = (train.Ints["customer_id"], train.Ints["article_id"], train.Ints[DataFiles.DayColumn]);
        var customerIds = Vocabulary.Read(pipeline.PackageDir, "customer_id");
        var packaged = ColumnTable.ReadParquet(Path.Combine(pipeline.PackageDir, PackageLayout.CustomersFile));
        var ids = packaged.Strings("customer_id");
        for (var i = 0; i < ids.Length; i += 37)
        {
            var c = customerIds[ids[i]];
            var expected = Enumerable.Range(0, train.RowCount).Where(r => customers[r] == c).OrderByDescending(r => days[r]).ThenByDescending(r => r)
                .Select(r => articles[r]).Distinct().Take(Length).ToList();
            expected.AddRange(Enumerable.Repeat(-1, Length - expected.Count));
            Assert.Equal(expected, Enumerable.Range(0, Length).Select(j => packaged.Ints(PurchaseHistory.SlotColumn(j))[i]));
        }
    }

    /// <summary>
    /// Cold start: a customer the package does not know, with recent article ids in the request, is
    /// scored with exactly that history (unknown article ids skipped); without them, with none.
    /// </summary>
    [Fact]
    public void ARequestsHistoryIsWhatTheQueryTowerSeesForANewCustomer()
    {
        var model = TrainedModel.Load(pipeline.Store, pipeline.Config);
        using var recommender = new Recommender(pipeline.PackageDir);
        var articleIds = Vocabulary.Read(pipeline.PackageDir, "article_id");
        string[] recent = [recommender.ArticleIds[3], "no-such-article", recommender.ArticleIds[10], recommender.ArticleIds[3]];
        var values = new Dictionary<string, string> { ["month"] = "7", ["age"] = "35", ["history"] = string.Join(",", recent) };
        var result = recommender.Recommend("a-new-customer", values, 10, excludeBought: false, exact: true, modelOnly: true);
        Assert.False(result.KnownCustomer);

        var stats = NormalizationStats.ReadAll(pipeline.PackageDir);
        int[] Bag(params string[] articles) => [.. articles.Select(a => articleIds[a]), .. Enumerable.Repeat(-1, Length - articles.Length)];
        float[] Query(int[] bag) => TwoTowerModel.Embed(model.Query, new SimdKernels(1), new TrainingColumns(1,
            new Dictionary<string, int[]> { ["customer_id"] = [Vocabulary.OutOfVocabulary], [PurchaseHistory.Column] = bag },
            new Dictionary<string, float[]>
            {
                ["age"] = stats["age"].Apply([35f]),
                ["month_sin"] = [(float)Math.Sin(2 * Math.PI * 7 / 12)],
                ["month_cos"] = [(float)Math.Cos(2 * Math.PI * 7 / 12)],
            }), [0]);
        // The score: the dot product, plus the repeat bias of the slot that holds the article.
        var bias = recommender.RepeatBias!;
        Assert.Contains(bias, b => Math.Abs(b) > 1e-3);   // trained away from its start, 0
        double Score(float[] q, string article, string[] history)
        {
            var row = Array.IndexOf(recommender.ArticleIds, article);
            var slot = Array.IndexOf(history, article);
            return Enumerable.Range(0, 16).Sum(d => (double)q[d] * recommender.Embeddings[row * 16 + d]) + (slot < 0 ? 0 : bias[slot]);
        }
        void AssertTopByBruteForce(RecommendResult list, float[] q, string[] history)
        {
            foreach (var item in list.Items)
                Assert.Equal(Score(q, item.ArticleId, history), item.Score, 1e-4);
            var listed = list.Items.Select(i => i.ArticleId).ToHashSet();
            var lowest = list.Items.Min(i => i.Score);
            Assert.All(recommender.ArticleIds.Where(a => !listed.Contains(a)), a => Assert.True(Score(q, a, history) <= lowest + 1e-4, a));
        }
        string[] used = [recent[0], recent[2]];
        AssertTopByBruteForce(result, Query(Bag(used)), used);

        // exclude_bought leaves out the articles the request passes (the basket): the same list without them.
        var longer = recommender.Recommend("a-new-customer", values, 10 + used.Length, excludeBought: false, exact: true, modelOnly: true);
        var excluding = recommender.Recommend("a-new-customer", values, 10, excludeBought: true, exact: true, modelOnly: true);
        Assert.Equal(longer.Items.Select(i => i.ArticleId).Where(a => !used.Contains(a)).Take(10), excluding.Items.Select(i => i.ArticleId));

        var without = recommender.Recommend("a-new-customer", new Dictionary<string, string> { ["month"] = "7", ["age"] = "35" }, 10,
            excludeBought: false, exact: true, modelOnly: true);
        AssertTopByBruteForce(without, Query(Bag()), []);
        Assert.NotEqual(result.Items.Select(i => i.ArticleId), without.Items.Select(i => i.ArticleId));
    }

    /// <summary>
    /// The served blend is the blend Evaluate scored: for customers of the training data, the
    /// Recommender's list (the month of the day after training; the packaged features and history)
    /// is the pipeline's <see cref="BlendArtifacts.AtEndOfTraining"/> list, article for article. Every
    /// ranker feature goes into it, the model's score and its repeat bias's share among them.
    /// </summary>
    [Fact]
    public void TheServedBlendIsTheBlendEvaluateScored()
    {
        var config = pipeline.Config;
        var train = TrainingColumns.Read(pipeline.Store, "train");
        using var kernels = new SimdKernels(2);
        var customers = Enumerable.Range(1, 40).ToArray();
        var blended = BlendArtifacts.AtEndOfTraining(pipeline.Store, config, TrainedModel.Load(pipeline.Store, config), kernels, train, customers);
        var month = DateOnly.FromDayNumber(train.Ints[DataFiles.DayColumn].Max() + 1).Month;
        var customerIds = Vocabulary.Read(pipeline.PackageDir, "customer_id");
        var articleIds = Vocabulary.Read(pipeline.PackageDir, "article_id");
        using var recommender = new Recommender(pipeline.PackageDir);
        foreach (var customer in customers)
        {
            var expected = blended.Recommend(customer, blended.Sources.Union(customer), 12).Select(articleIds.Decode);
            var served = recommender.Recommend(customerIds.Decode(customer), new Dictionary<string, string> { ["month"] = $"{month}" }, 12,
                excludeBought: false, exact: true);
            Assert.Equal("blend", served.Source);
            Assert.Equal(expected, served.Items.Select(i => i.ArticleId));
        }
    }

    /// <summary>RecommendMany (RecommendAll's batches) reranks with the repeat bias as Recommend does: the same lists, model alone and blended.</summary>
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void BatchListsWithTheRepeatBiasEqualTheRecommenders(bool modelOnly, bool excludeBought)
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        var customers = Vocabulary.Read(pipeline.PackageDir, "customer_id").Values.Take(25).Append("someone-new").ToArray();
        var values = new Dictionary<string, string> { ["month"] = "7" };
        var batch = recommender.RecommendMany(customers, values, 12, excludeBought, modelOnly, new SimdKernels(2), threads: 2);
        for (var i = 0; i < customers.Length; i++)
        {
            var one = recommender.Recommend(customers[i], values, 12, excludeBought, exact: true, modelOnly);
            Assert.Equal(one.Items.Select(x => (x.ArticleId, x.Score)), batch[i].Items.Select(x => (x.ArticleId, x.Score)));
        }
    }

    /// <summary>
    /// blend.retrain_model: the blend's model trains on exactly the training rows before the label
    /// days (their history slots with them), and comes out other than the trained model.
    /// </summary>
    [Fact]
    public void TheBlendsModelTrainsOnTheDaysBeforeItsLabels()
    {
        var train = TrainingColumns.Read(pipeline.Store, "train");
        var days = train.Ints[DataFiles.DayColumn];
        var firstLabelDay = days.Max() - 6;
        var before = Enumerable.Range(0, train.RowCount).Where(r => days[r] < firstLabelDay).ToArray();
        Assert.InRange(before.Length, 1, train.RowCount - 1);
        using var kernels = new SimdKernels(2);
        var features = FeatureSet.From(pipeline.Config);
        var (model, rows) = Stages.BlendStage.TrainBefore(firstLabelDay, pipeline.Config, features, train,
            TrainedModel.VocabularySizes(pipeline.Store, features), kernels, new RecordingLog());
        Assert.Equal(before.Length, rows.RowCount);
        Assert.All(rows.Ints[DataFiles.DayColumn], d => Assert.True(d < firstLabelDay));
        Assert.Equal(before.SelectMany(r => train.Ints[PurchaseHistory.Column].AsSpan(r * Length, Length).ToArray()), rows.Ints[PurchaseHistory.Column]);
        Assert.Equal(before.Select(r => train.Floats["age"][r]), rows.Floats["age"]);
        var trained = TrainedModel.Load(pipeline.Store, pipeline.Config);
        Assert.NotEqual(trained.RepeatBias!.Value, model.RepeatBias!.Value);
    }

    /// <summary>Evaluate's cold-start section, against the validation rows counted independently from Ingest's table.</summary>
    [Fact]
    public void ColdStartScoresTheRowsOfNewCustomersWhoBoughtSomethingElse()
    {
        var val = TrainingColumns.Read(pipeline.Store, "val");
        var codes = ColumnTable.ReadParquet(Path.Combine(pipeline.Store.StageDir("ingest"), "val.parquet")).Ints("customer_id");
        var (customers, articles, days) = (val.Ints["customer_id"], val.Ints["article_id"], val.Ints[DataFiles.DayColumn]);
        var targets = Enumerable.Range(0, val.RowCount).Where(r => customers[r] == Vocabulary.OutOfVocabulary)
            .Where(r => Enumerable.Range(0, val.RowCount).Any(o => codes[o] == codes[r] && customers[o] == Vocabulary.OutOfVocabulary
                && days[o] <= days[r] && articles[o] != articles[r] && articles[o] != Vocabulary.OutOfVocabulary)).ToList();
        Assert.NotEmpty(targets);

        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(pipeline.Store.StageDir("evaluate"), "metrics.json")));
        Assert.Equal(targets.Select(r => codes[r]).Distinct().Count(), metrics.RootElement.GetProperty("cold_start_customers").GetInt32());
        var methods = metrics.RootElement.GetProperty("cold_start").EnumerateArray().ToList();
        Assert.Equal(3, methods.Count);
        Assert.All(methods, m => Assert.Equal(targets.Count, m.GetProperty("metrics").GetProperty("rows").GetInt32()));
    }
}
