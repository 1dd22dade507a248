using System.Text.Json.Nodes;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;
using TwoTower.Serving;
using TwoTower.Stages;

namespace TwoTower.Tests;

/// <summary>
/// RecommendAll against the one-at-a-time Recommender: the batch lists (model alone and blended,
/// with and without exclude_bought, known and unknown customers) equal what the service returns
/// with exact scoring; the H&amp;M submission file's format; a failure during the write leaves no
/// file under a final name.
/// </summary>
public class RecommendAllTests(PackagedPipeline pipeline) : IClassFixture<PackagedPipeline>
{
    static ColumnTable RunRecommendAll(ArtifactStore store, PipelineConfig config)
    {
        var stage = new RecommendAllStage();
        store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);
        return ColumnTable.ReadParquet(Path.Combine(store.StageDir("recommend"), BatchRecommendations.RecommendationsFile));
    }

    [Theory]
    [InlineData("model", false)]
    [InlineData("model", true)]
    [InlineData("blend", false)]
    [InlineData("blend", true)]
    public void BatchListsEqualTheRecommendersForSampledCustomers(string list, bool excludeBought)
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        var known = Vocabulary.Read(pipeline.PackageDir, "customer_id").Values;
        var order = Enumerable.Range(0, known.Count).ToArray();
        new Rng(7).Shuffle(order.AsSpan());
        var sample = order.Take(40).Select(i => known[i]).Append("someone-new").Append(known[order[0]]).ToArray();
        var customersFile = Path.Combine(pipeline.Dir, $"customers-{list}-{excludeBought}.csv");
        File.WriteAllText(customersFile, "customer_id,age\n" + string.Join("", sample.Select(c => c + ",30\n")));
        var config = PipelineConfig.Parse("", "test", [.. pipeline.Overrides, "recommend.k=15", $"recommend.list={list}",
            $"recommend.exclude_bought={excludeBought.ToString().ToLowerInvariant()}", $"recommend.customers={customersFile}"]);

        var table = RunRecommendAll(pipeline.Store, config);

        var (customers, ranks, articles, scores, sources) = (table.Strings("customer_id"), table.Ints("rank"), table.Strings("article_id"),
            table.Floats("score"), table.Strings("sources"));
        Assert.Equal(sample.Distinct(), customers.Distinct());   // the file's order, a repeated id once
        var values = new Dictionary<string, string> { ["month"] = recommender.PredictionMonth!.Value.ToString() };
        foreach (var customer in sample.Distinct())
        {
            var rows = Enumerable.Range(0, customers.Length).Where(r => customers[r] == customer).ToArray();
            var expected = recommender.Recommend(customer, values, 15, excludeBought, exact: true, modelOnly: list == "model");
            Assert.Equal(list, expected.Source);
            Assert.Equal(15, rows.Length);
            Assert.Equal(Enumerable.Range(1, 15), rows.Select(r => ranks[r]));
            Assert.Equal(expected.Items.Select(i => i.ArticleId), rows.Select(r => articles[r]));
            Assert.Equal(expected.Items.Select(i => i.Score), rows.Select(r => scores[r]));
            Assert.Equal(expected.Items.Select(i => string.Join(',', i.Sources)), rows.Select(r => sources[r]));
        }
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(pipeline.Store.StageDir("recommend"), "summary.json")))!;
        Assert.Equal(1, summary["unknown_customers"]!.GetValue<int>());
        Assert.Equal(sample.Length - 1, summary["customers"]!.GetValue<int>());
    }

    [Fact]
    public void TrainingCustomersAreEveryCustomerOfTheVocabulary()
    {
        var table = RunRecommendAll(pipeline.Store, PipelineConfig.Parse("", "test", [.. pipeline.Overrides, "recommend.list=model"]));
        var known = Vocabulary.Read(pipeline.PackageDir, "customer_id").Values;
        Assert.Equal(known.Count * 12, table.RowCount);
        Assert.Equal(known, table.Strings("customer_id").Where((_, r) => r % 12 == 0));
        Assert.All(table.Strings("sources"), s => Assert.Equal("two_tower", s));
    }

    [Fact]
    public void AFailureDuringTheWriteLeavesNoFileUnderAFinalName()
    {
        var folder = Directory.CreateTempSubdirectory("twotower-recommend-").FullName;
        try
        {
            IEnumerable<RecommendResult[]> Failing()
            {
                yield return [new RecommendResult("a", true, "model", [new Recommendation("x", 1f, ["two_tower"], new Dictionary<string, string>())])];
                throw new IOException("disk gone");
            }
            Assert.Throws<IOException>(() => BatchRecommendations.Write(folder, Failing(), 2, id => id, new RecordingLog()));
            Assert.Empty(Directory.GetFiles(folder));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }
}

/// <summary>RecommendAll on H&amp;M's raw layout: submission.csv as the competition reads it.</summary>
public sealed class SubmissionTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-submission-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void SubmissionCoversEveryCustomerOfCustomersCsvWithTwelveArticlesAsWritten()
    {
        var config = PipelineConfig.Parse("", "test", ["data.format=hm_raw", $"data.dir={dir}/data", "synth.scale=0.01", "train.epochs=1", "train.batch_size=256"]);
        var log = new RecordingLog();
        Synthesizer.EnsureData(config, log);
        // articles.csv as H&M's CSV often reaches people: leading zeros dropped (transactions keep them; both pad to 10 digits).
        var articlesPath = DataFiles.Articles(config);
        var lines = File.ReadAllLines(articlesPath);
        File.WriteAllLines(articlesPath, lines.Take(1).Concat(lines.Skip(1).Select(l => l.TrimStart('0'))));
        var customersInFile = RawHm.ReadIds(DataFiles.Customers(config), "customer_id").Select(c => c.Id).ToArray();
        var writtenArticles = RawHm.ReadIds(articlesPath, "article_id").Select(a => a.Written).ToHashSet();
        Assert.Contains(writtenArticles, a => a.Length < 10);

        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        foreach (Stage stage in new Stage[] { new IngestStage(), new EncodeStage(), new NormalizeStage(), new TrainStage(), new BlendStage(),
                     new EvaluateStage(), new PackageStage(), new RecommendAllStage() })
            store.Run(stage, config, log, store.Fingerprint(stage, config), resume: false);

        var submission = File.ReadAllLines(Path.Combine(store.StageDir("recommend"), BatchRecommendations.SubmissionFile));
        Assert.Equal("customer_id,prediction", submission[0]);
        Assert.Equal(customersInFile, submission.Skip(1).Select(l => l.Split(',')[0]));
        var trainingCustomers = Vocabulary.Read(store.StageDir("package"), "customer_id").Values.ToHashSet();
        Assert.Contains(customersInFile, c => !trainingCustomers.Contains(c));   // customers without purchases are covered too
        foreach (var line in submission.Skip(1))
        {
            var articles = line.Split(',')[1].Split(' ');
            Assert.Equal(12, articles.Length);
            Assert.Equal(12, articles.Distinct().Count());
            Assert.All(articles, a => Assert.Contains(a, writtenArticles));
        }
        // The Parquet table holds the same lists, in the pipeline's (padded) spelling.
        var table = ColumnTable.ReadParquet(Path.Combine(store.StageDir("recommend"), BatchRecommendations.RecommendationsFile));
        Assert.Equal(customersInFile.Length * 12, table.RowCount);
        Assert.Equal(submission[1].Split(',')[1].Split(' ').Select(a => a.PadLeft(10, '0')), table.Strings("article_id").Take(12));
    }
}
