using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TwoTower.Benchmarks;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels.Simd;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Serving;
using TwoTower.Stages;

namespace TwoTower.Tests;

/// <summary>The whole pipeline once, small, up to Package; shared by the package tests.</summary>
public class PackagedPipeline : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("twotower-package-").FullName;
    public ArtifactStore Store { get; }
    public PipelineConfig Config { get; }
    public string[] Overrides { get; }


    public PackagedPipeline() : this([]) { }

    protected PackagedPipeline(string[] extraOverrides)
    {
        Overrides = [$"data.dir={Dir}/data", "synth.scale=0.02", "train.epochs=2", "train.batch_size=256", .. extraOverrides];
        Config = PipelineConfig.Parse("", "test", Overrides);
        Store = new ArtifactStore(Path.Combine(Dir, "artifacts"));
        Synthesizer.EnsureData(Config, new RecordingLog());
        foreach (Stage stage in new Stage[] { new IngestStage(), new EncodeStage(), new NormalizeStage(), new TrainStage(), new BlendStage(), new EvaluateStage(), new PackageStage() })
            Store.Run(stage, Config, new RecordingLog(), Store.Fingerprint(stage, Config), resume: false);
    }

    public string PackageDir => Store.StageDir("package");

    public void Dispose() => Directory.Delete(Dir, true);
}

public class PackageTests(PackagedPipeline pipeline) : IClassFixture<PackagedPipeline>
{
    TwoTowerModel LoadModel(out FeatureSet features, out TrainingColumns val)
    {
        features = FeatureSet.From(pipeline.Config);
        var model = TrainedModel.Load(pipeline.Store, pipeline.Config);
        val = TrainingColumns.Read(pipeline.Store, "val");
        return model;
    }

    [Fact]
    public void ManifestRecordsFormatMetricsAndIndexRecall()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(pipeline.PackageDir, PackageLayout.ManifestFile)))!;
        Assert.Equal(PackageLayout.FormatVersion, manifest["format_version"]!.GetValue<string>());
        Assert.InRange(manifest["index"]!["recall_at_100"]!.GetValue<double>(), 0.95, 1.0);
        Assert.Equal("model", manifest["validation_metrics"]!["methods"]![0]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void PackageFailsWhenTheIndexRecallIsBelowTheFloor()
    {
        var config = PipelineConfig.Parse("", "test", [.. pipeline.Overrides, "package.connectivity=2", "package.expansion_add=1",
            "package.expansion_search=1", "package.recall_floor=0.99"]);
        var stage = new PackageStage();
        var error = Assert.Throws<PipelineError>(() =>
            pipeline.Store.Run(stage, config, new RecordingLog(), pipeline.Store.Fingerprint(stage, config), resume: false));
        Assert.Contains("below package.recall_floor 0.99", error.Message);
        Assert.True(File.Exists(Path.Combine(pipeline.PackageDir, PackageLayout.ManifestFile)), "the published package is untouched");
    }

    [Fact]
    public void OnnxTowersMatchTheDotNetForwardPass()
    {
        var model = LoadModel(out var features, out var val);
        var rows = Enumerable.Range(0, 64).ToArray();
        // Raw (unnormalized) inputs: ONNX normalizes inside the graph; recover them from the normalized columns.
        var stats = NormalizationStats.ReadAll(pipeline.PackageDir);
        foreach (var (tower, file) in new[] { (model.Query, "query_tower.onnx"), (model.Candidate, "candidate_tower.onnx") })
        {
            var expected = TwoTowerModel.Embed(tower, new SimdKernels(1), val, rows);
            using var session = new InferenceSession(Path.Combine(pipeline.PackageDir, file));
            var inputs = tower.Inputs.Select(i => i.Feature.IsCategorical
                ? NamedOnnxValue.CreateFromTensor(i.Feature.Column,
                    new DenseTensor<long>(rows.Select(r => (long)val.Ints[i.Feature.Column][r]).ToArray(), [rows.Length]))
                : NamedOnnxValue.CreateFromTensor(i.Feature.Column, new DenseTensor<float>(rows.Select(r =>
                {
                    var s = stats[i.Feature.Column];
                    var x = val.Floats[i.Feature.Column][r];
                    return s.Normalized ? (float)(x * s.Std + s.Mean) : x;
                }).ToArray(), [rows.Length]))).ToList();
            using var results = session.Run(inputs);
            var actual = results.First().AsTensor<float>().ToArray();
            Assert.Equal(expected.Length, actual.Length);
            var worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(worst < 1e-5, $"{file}: max abs difference {worst}");
        }
    }

    /// <summary>
    /// The ranker reads its features by position: a package whose ranker learnt another feature list (one
    /// built by an older version, without two_tower_repeat_bias) is refused by name, not served wrong.
    /// </summary>
    [Fact]
    public void APackageWhoseRankerLearntOtherFeaturesIsRefused()
    {
        var error = RefusalOfEditedCopy("blend.json", summary =>
        {
            var features = summary["features"]!.AsArray().Select(n => n!.GetValue<string>()).Where(n => n != "two_tower_repeat_bias").ToArray();
            summary["features"] = new JsonArray([.. features.Select(n => (JsonNode)n)]);
        });
        Assert.Contains("this version's alone: two_tower_repeat_bias;", error.Message);
        Assert.Contains("build it again (--target=Package)", error.Message);
    }

    /// <summary>A package of an older format is refused before any of its files is read, naming both formats.</summary>
    [Fact]
    public void APackageOfAnotherFormatIsRefused()
    {
        var error = RefusalOfEditedCopy(PackageLayout.ManifestFile, manifest => manifest["format_version"] = "twotower-package-3");
        Assert.Contains("format_version 'twotower-package-3', and this version of TwoTower reads 'twotower-package-4'", error.Message);
        Assert.Contains("build the package again (--target=Package)", error.Message);
    }

    /// <summary>The Recommender's error on a copy of the package whose JSON file `name` was edited.</summary>
    PipelineError RefusalOfEditedCopy(string name, Action<JsonNode> edit)
    {
        var copy = Directory.CreateTempSubdirectory("twotower-old-package-").FullName;
        try
        {
            foreach (var file in Directory.EnumerateFiles(pipeline.PackageDir, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(copy, Path.GetRelativePath(pipeline.PackageDir, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            var path = Path.Combine(copy, name);
            var json = JsonNode.Parse(File.ReadAllText(path))!;
            edit(json);
            File.WriteAllText(path, json.ToJsonString());
            return Assert.Throws<PipelineError>(() => new Recommender(copy).Dispose());
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    /// <summary>A request's purchase history on a model without history features is refused, not silently ignored.</summary>
    [Fact]
    public void AHistoryForAModelWithoutHistoryFeaturesIsRefused()
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        var error = Assert.Throws<ArgumentException>(() => recommender.Recommend("someone-new", new Dictionary<string, string> { ["history"] = recommender.ArticleIds[0] },
            10, excludeBought: false, exact: true));
        Assert.Contains("needs a model with history features", error.Message);
    }

    [Fact]
    public void RecommenderFromThePackageScoresLikeTheTrainedModel()
    {
        var model = LoadModel(out var features, out _);
        using var recommender = new Recommender(pipeline.PackageDir);
        var vocabulary = JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(pipeline.PackageDir, Vocabulary.FileName("customer_id"))))!;
        var customer = vocabulary[3];
        var values = new Dictionary<string, string> { ["age"] = "35", ["month"] = "7" };
        var exact = recommender.Recommend(customer, values, 20, excludeBought: false, exact: true, modelOnly: true);
        Assert.True(exact.KnownCustomer);
        Assert.Equal("model", exact.Source);
        Assert.Equal(20, exact.Items.Count);
        Assert.True(exact.Items.Zip(exact.Items.Skip(1)).All(p => p.First.Score >= p.Second.Score));

        // Independent: the trained model's query tower on the same features, scored against the candidate embeddings.
        var stats = NormalizationStats.ReadAll(pipeline.PackageDir);
        var data = new TrainingColumns(1, new Dictionary<string, int[]> { ["customer_id"] = [4] }, new Dictionary<string, float[]>
        {
            ["age"] = stats["age"].Apply([35f]),
            ["month_sin"] = [(float)Math.Sin(2 * Math.PI * 7 / 12)],
            ["month_cos"] = [(float)Math.Cos(2 * Math.PI * 7 / 12)],
        });
        var q = TwoTowerModel.Embed(model.Query, new SimdKernels(1), data, [0]);
        foreach (var item in exact.Items)
        {
            var row = Array.IndexOf(recommender.ArticleIds, item.ArticleId);
            var score = Enumerable.Range(0, 16).Sum(d => (double)q[d] * recommender.Embeddings[row * 16 + d]);
            Assert.Equal(score, item.Score, 1e-4);
        }
        var best = Enumerable.Range(0, recommender.ArticleIds.Length)
            .Max(r => Enumerable.Range(0, 16).Sum(d => (double)q[d] * recommender.Embeddings[r * 16 + d]));
        Assert.Equal(best, exact.Items[0].Score, 1e-4);

        var viaIndex = recommender.Recommend(customer, values, 20, excludeBought: false, exact: false, modelOnly: true);
        Assert.True(viaIndex.Items.Select(i => i.ArticleId).Intersect(exact.Items.Select(i => i.ArticleId)).Count() >= 15);
        var fresh = recommender.Recommend(customer, values, 20, excludeBought: true, exact: true, modelOnly: true);
        var history = ColumnTable.ReadParquet(Path.Combine(pipeline.PackageDir, PackageLayout.HistoryFile));
        var customerIds = Vocabulary.Read(pipeline.PackageDir, "customer_id");
        var bought = history.Ints(PackageLayout.HistoryCustomerColumn).Select(customerIds.Decode).Zip(history.Ints(PackageLayout.HistoryArticleRowColumn))
            .Where(p => p.First == customer)
            .Select(p => recommender.ArticleIds[p.Second]).ToHashSet();
        Assert.NotEmpty(bought);
        Assert.DoesNotContain(fresh.Items, i => bought.Contains(i.ArticleId));
    }

    /// <summary>
    /// By default the package serves the blend: the ranker's scores in order, the customer's past
    /// articles among them (buy-again is a source) unless exclude_bought, and a list of the same
    /// articles whether the model's candidates come from the index or exact scoring when they agree.
    /// </summary>
    [Fact]
    public void RecommenderServesTheBlendByDefaultAndHonoursExcludeBought()
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        Assert.True(recommender.HasBlend);
        var history = ColumnTable.ReadParquet(Path.Combine(pipeline.PackageDir, PackageLayout.HistoryFile));
        var customers = history.Ints(PackageLayout.HistoryCustomerColumn).Select(Vocabulary.Read(pipeline.PackageDir, "customer_id").Decode).ToArray();
        var customer = customers.GroupBy(c => c).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        var bought = customers.Zip(history.Ints(PackageLayout.HistoryArticleRowColumn)).Where(p => p.First == customer).Select(p => recommender.ArticleIds[p.Second]).ToHashSet();
        var values = new Dictionary<string, string> { ["age"] = "35", ["month"] = "7" };

        var blend = recommender.Recommend(customer, values, 12, excludeBought: false, exact: true);
        Assert.Equal("blend", blend.Source);
        Assert.Equal(12, blend.Items.Count);
        Assert.Equal(12, blend.Items.Select(i => i.ArticleId).Distinct().Count());
        Assert.True(blend.Items.Zip(blend.Items.Skip(1)).All(p => p.First.Score >= p.Second.Score));
        Assert.Contains(blend.Items, i => bought.Contains(i.ArticleId));

        var fresh = recommender.Recommend(customer, values, 12, excludeBought: true, exact: true);
        Assert.Equal(12, fresh.Items.Count);
        Assert.DoesNotContain(fresh.Items, i => bought.Contains(i.ArticleId));
        // The same ranking with the past articles taken out: the fresh list is the blend's order without them.
        var longer = recommender.Recommend(customer, values, 12 + bought.Count, excludeBought: false, exact: true);
        Assert.Equal(longer.Items.Where(i => !bought.Contains(i.ArticleId)).Take(12).Select(i => i.ArticleId), fresh.Items.Select(i => i.ArticleId));

        var unknown = recommender.Recommend("someone-new", values, 12, excludeBought: false, exact: false);
        Assert.False(unknown.KnownCustomer);
        Assert.Equal(12, unknown.Items.Count);
    }

    [Fact]
    public async Task ServiceAnswersAndRejectsBadParameters()
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        var port = ServingBenchmark.FreePort();
        var app = RecommendService.Build(recommender, new ServiceSettings("127.0.0.1", port, MaxK: 50, MaxConcurrentRequests: 64, TimeSpan.FromSeconds(5)));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            async Task<(HttpStatusCode, JsonNode)> Get(string path)
            {
                using var response = await http.GetAsync(path);
                return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
            }
            Assert.Equal(HttpStatusCode.OK, (await Get("/health")).Item1);
            var (status, body) = await Get($"/recommend?customer_id={recommender.ArticleIds.Length}&age=30&month=3&k=5");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.False(body["known_customer"]!.GetValue<bool>());
            Assert.Contains("out-of-vocabulary", body["note"]!.GetValue<string>());
            Assert.Equal(5, body["items"]!.AsArray().Count);
            (status, body) = await Get("/recommend?customer_id=x&k=5000");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(50, body["items"]!.AsArray().Count);
            Assert.Contains("capped", body["k_capped"]!.GetValue<string>());
            foreach (var (query, message) in new[]
                     {
                         ("/recommend?k=5", "customer_id is required"),
                         ("/recommend?customer_id=x&k=zero", "k must be a positive integer"),
                         ("/recommend?customer_id=x&k=-3", "k must be a positive integer"),
                         ("/recommend?customer_id=x&month=13", "'month' must be an integer 1..12"),
                         ("/recommend?customer_id=x&age=old", "'age' must be a number"),
                     })
            {
                (status, body) = await Get(query);
                Assert.Equal(HttpStatusCode.BadRequest, status);
                Assert.Contains(message, body["error"]!.GetValue<string>());
            }
        }
        finally
        {
            await app.StopAsync();
        }
    }

    /// <summary>
    /// Beyond serve.max_concurrent_requests the service answers 503 at once instead of queueing (here
    /// one at a time and 32 connections sending exact-scoring requests together), and never a 500.
    /// </summary>
    [Fact]
    public async Task RequestsBeyondTheConcurrencyLimitGet503AndNothingFails()
    {
        using var recommender = new Recommender(pipeline.PackageDir);
        var port = ServingBenchmark.FreePort();
        var app = RecommendService.Build(recommender, new ServiceSettings("127.0.0.1", port, MaxK: 1000, MaxConcurrentRequests: 1, TimeSpan.FromSeconds(5)));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 32 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var responses = await Task.WhenAll(Enumerable.Range(0, 256).Select(async i =>
            {
                using var response = await http.GetAsync($"/recommend?customer_id=c{i}&k=1000&exact=true");
                return response.StatusCode;
            }));
            Assert.Contains(HttpStatusCode.ServiceUnavailable, responses);
            Assert.Contains(HttpStatusCode.OK, responses);
            Assert.All(responses, r => Assert.True(r is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, r.ToString()));
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public void OpenSearchFilesFollowTheDocumentedFormats()
    {
        var dir = Path.Combine(pipeline.PackageDir, "opensearch");
        var mapping = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, OpenSearchExport.MappingFile)))!;
        Assert.True(mapping["settings"]!["index"]!["knn"]!.GetValue<bool>());
        Assert.Equal(100, mapping["settings"]!["index"]!["knn.algo_param.ef_search"]!.GetValue<int>());
        var vector = mapping["mappings"]!["properties"]!["embedding"]!;
        Assert.Equal("knn_vector", vector["type"]!.GetValue<string>());
        Assert.Equal(16, vector["dimension"]!.GetValue<int>());
        Assert.Equal("hnsw", vector["method"]!["name"]!.GetValue<string>());
        Assert.Equal("faiss", vector["method"]!["engine"]!.GetValue<string>());
        Assert.Equal("innerproduct", vector["method"]!["space_type"]!.GetValue<string>());
        Assert.Equal(48, vector["method"]!["parameters"]!["m"]!.GetValue<int>());
        Assert.Equal(256, vector["method"]!["parameters"]!["ef_construction"]!.GetValue<int>());

        var lines = File.ReadAllLines(Path.Combine(dir, OpenSearchExport.BulkFile));
        using var recommender = new Recommender(pipeline.PackageDir);
        Assert.Equal(2 * recommender.ArticleIds.Length, lines.Length);
        var action = JsonNode.Parse(lines[0])!["index"]!;
        var document = JsonNode.Parse(lines[1])!;
        Assert.Equal("twotower-articles", action["_index"]!.GetValue<string>());
        Assert.Equal(recommender.ArticleIds[0], action["_id"]!.GetValue<string>());
        Assert.Equal(recommender.ArticleIds[0], document["article_id"]!.GetValue<string>());
        var embedding = document["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        Assert.Equal(recommender.Embeddings.AsSpan(0, 16).ToArray(), embedding);
    }

    [Fact]
    public async Task PublishingSendsTheIndexThenBulkChunksAndRetriesServerErrors()
    {
        var port = ServingBenchmark.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var requests = new List<(string Method, string Path, string ContentType, string Body)>();
        var failedOnce = false;
        var server = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); }
                catch (HttpListenerException) { return; }
                catch (ObjectDisposedException) { return; }
                using var reader = new StreamReader(context.Request.InputStream);
                var body = await reader.ReadToEndAsync();
                lock (requests)
                    requests.Add((context.Request.HttpMethod, context.Request.Url!.AbsolutePath, context.Request.ContentType ?? "", body));
                // The first bulk request fails with a 503: the publisher must retry it.
                var fail = context.Request.Url!.AbsolutePath == "/_bulk" && !failedOnce;
                failedOnce |= fail;
                context.Response.StatusCode = fail ? 503 : 200;
                var reply = Encoding.UTF8.GetBytes(fail ? "{}" : "{\"errors\":false}");
                await context.Response.OutputStream.WriteAsync(reply);
                context.Response.Close();
            }
        });
        var config = PipelineConfig.Parse("", "test", [$"opensearch.url=http://127.0.0.1:{port}"]);
        await OpenSearchExport.PublishAsync(pipeline.PackageDir, config, new RecordingLog(), documentsPerRequest: 100);
        listener.Stop();
        await Task.WhenAny(server, Task.Delay(5000));

        var articles = File.ReadAllLines(Path.Combine(pipeline.PackageDir, "opensearch", OpenSearchExport.BulkFile)).Length / 2;
        Assert.Equal(("PUT", "/twotower-articles"), (requests[0].Method, requests[0].Path));
        Assert.Equal("knn_vector", JsonNode.Parse(requests[0].Body)!["mappings"]!["properties"]!["embedding"]!["type"]!.GetValue<string>());
        var bulks = requests.Skip(1).ToList();
        Assert.All(bulks, r => Assert.Equal(("POST", "/_bulk"), (r.Method, r.Path)));
        Assert.All(bulks, r => Assert.StartsWith("application/x-ndjson", r.ContentType));
        Assert.All(bulks, r => Assert.EndsWith("\n", r.Body));
        Assert.Equal(bulks[0].Body, bulks[1].Body);  // the retried chunk
        Assert.Equal(articles, bulks.Skip(1).Sum(r => r.Body.Count(c => c == '\n')) / 2);
    }

    [Fact]
    public async Task PublishingToAnUnreachableClusterIsAClearError()
    {
        var config = PipelineConfig.Parse("", "test", [$"opensearch.url=http://127.0.0.1:{ServingBenchmark.FreePort()}", "opensearch.retries=2"]);
        var error = await Assert.ThrowsAsync<PipelineError>(() => OpenSearchExport.PublishAsync(pipeline.PackageDir, config, new RecordingLog()));
        Assert.Contains("cannot reach the OpenSearch cluster at http://127.0.0.1:", error.Message);
    }
}
