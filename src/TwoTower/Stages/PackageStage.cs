using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Unum.USearch;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;
using TwoTower.Serving;

namespace TwoTower.Stages;

/// <summary>
/// Package: everything needed to serve, usable without this repository's training code:
/// package.json (format, fingerprints, config, validation metrics, index recall), the weights,
/// vocabularies and normalization statistics, candidates.parquet (article id, item features, the
/// embedding as e0..e15), index.usearch (HNSW, inner product), history.parquet (training
/// purchases, for "exclude already bought"), customers.parquet (each customer's query features
/// as of the end of training), query_tower.onnx / candidate_tower.onnx and the
/// OpenSearch k-NN mapping and _bulk file.
/// </summary>
public sealed class PackageStage : Stage
{
    public override string Name => "package";
    public override string CodeVersion => "package-5";
    public override IReadOnlyList<string> ConfigKeys => ["package", "opensearch", "features"];
    public override IReadOnlyList<string> Upstream => ["evaluate"];

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var features = FeatureSet.From(config);
        var vocabularies = features.CategoricalColumns.ToDictionary(c => c, c => Vocabulary.Read(run.Store.StageDir("encode"), c));
        var model = TrainedModel.Load(run.Store, config);
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, run.Log);
        var train = TrainingColumns.Read(run.Store, "train");

        CopyModelFiles(run, features);
        CopyPlots(run);
        // Candidates: each distinct training article with its first row's features, as Evaluate scores them.
        var rows = Catalogue.Rows(train.Ints[features.CandidateId]);
        var dim = model.Candidate.OutputDim;
        var embeddings = TwoTowerModel.Embed(model.Candidate, kernels, train, rows);
        var candidates = WriteCandidates(run, features, vocabularies, train, rows, embeddings, dim);
        WriteHistory(run, features, train, rows);
        WriteCustomers(run, features, vocabularies, train);
        var index = IndexSettings.From(config);
        WriteIndex(run, index, embeddings, rows.Length, dim);

        WriteBlend(run, model, kernels, train);

        var normalization = NormalizationStats.ReadAll(run.Store.StageDir("normalize"));
        OnnxExport.Write(model.Query, normalization, run.Output(PackageLayout.QueryTowerFile));
        OnnxExport.Write(model.Candidate, normalization, run.Output(PackageLayout.CandidateTowerFile));
        Directory.CreateDirectory(run.Output(PackageLayout.OpenSearchFolder));
        OpenSearchExport.Write(run.Output(PackageLayout.OpenSearchFolder), config, candidates, features.CandidateId, dim);

        // Recall@100 of the index against exact search on sampled validation queries.
        var val = TrainingColumns.Read(run.Store, "val");
        var recallQueries = (int)Math.Min(val.RowCount, config.Get(ConfigSchema.Package.RecallQueries));
        var recall = MeasureRecall(run, model, kernels, val, recallQueries, embeddings, rows.Length, dim);
        var floor = config.Get(ConfigSchema.Package.RecallFloor);
        run.Log.Info($"Index recall@100 against exact search: {recall:F4} (floor {floor})");
        if (recall < floor)
            throw new PipelineError($"the index's recall@100 is {recall:F4}, below package.recall_floor {floor}: " +
                                    "raise package.expansion_search or package.connectivity");
        WriteManifest(run, index, rows.Length, dim, recall, recallQueries);
    }

    /// <summary>The weights, the resolved config, the normalization statistics and the vocabularies, as the upstream stages wrote them.</summary>
    static void CopyModelFiles(StageRun run, FeatureSet features)
    {
        foreach (var (stage, file) in new[] { ("train", TrainedModel.WeightsFile), ("train", TrainedModel.ConfigFile), ("normalize", NormalizationStats.FileName) }
                     .Concat(features.CategoricalColumns.Select(c => ("encode", Vocabulary.FileName(c)))))
            File.Copy(run.Input(stage, file), run.Output(file));
    }

    /// <summary>
    /// What the blend serves from (data with purchase dates only): the training purchases, the
    /// popularity segments, the co-purchase neighbours as of the end of training, and the ranker.
    /// </summary>
    static void WriteBlend(StageRun run, TwoTowerModel model, IKernels kernels, TrainingColumns train)
    {
        if (!train.Ints.ContainsKey(DataFiles.DayColumn))
            return;
        PackagedBlend.Write(run.OutputDir, BlendArtifacts.AtEndOfTraining(run.Store, run.Config, model, kernels, train, []).Sources);
        foreach (var file in new[] { BlendArtifacts.RankerFile, BlendArtifacts.SummaryFile }.Where(f => File.Exists(run.Input("blend", f))))
            File.Copy(run.Input("blend", file), run.Output(file));
    }

    /// <summary>Evaluate's plots, for the model card Serve's page shows.</summary>
    static void CopyPlots(StageRun run)
    {
        Directory.CreateDirectory(run.Output(PackageLayout.PlotsFolder));
        foreach (var plot in Directory.GetFiles(run.Store.StageDir("evaluate"), "*.png").Order(StringComparer.Ordinal))
            File.Copy(plot, Path.Combine(run.Output(PackageLayout.PlotsFolder), Path.GetFileName(plot)));
    }

    /// <summary>candidates.parquet: the article id, its item features (decoded) and its embedding as e0..e(dim−1).</summary>
    static ColumnTable WriteCandidates(StageRun run, FeatureSet features, Dictionary<string, Vocabulary> vocabularies, TrainingColumns train,
        int[] rows, float[] embeddings, int dim)
    {
        var items = train.Ints[features.CandidateId];
        var candidates = new ColumnTable();
        candidates.Add(features.CandidateId, rows.Select(r => vocabularies[features.CandidateId].Decode(items[r])).ToArray());
        foreach (var f in features.Candidate.Where(f => f.Column != features.CandidateId))
        {
            if (f.IsCategorical)
                candidates.Add(f.Column, rows.Select(r => vocabularies[f.Column].Decode(train.Ints[f.Column][r])).ToArray());
            else
                candidates.Add(f.Column, rows.Select(r => train.Floats[f.Column][r]).ToArray());
        }
        for (var d = 0; d < dim; d++)
            candidates.Add($"e{d}", Enumerable.Range(0, rows.Length).Select(i => embeddings[i * dim + d]).ToArray());
        candidates.WriteParquet(run.Output(PackageLayout.CandidatesFile));
        return candidates;
    }

    /// <summary>
    /// history.parquet: the distinct training purchases as (customer vocabulary id, candidate row),
    /// sorted, for "exclude already bought". Ids, not id strings: at full H&amp;M scale 28M strings
    /// cost the service gigabytes to load.
    /// </summary>
    static void WriteHistory(StageRun run, FeatureSet features, TrainingColumns train, int[] rows)
    {
        var items = train.Ints[features.CandidateId];
        var rowOfItem = rows.Select((r, i) => (items[r], i)).ToDictionary(x => x.Item1, x => x.i);
        var customers = train.Ints[features.QueryId];
        var pairs = new long[train.RowCount];
        for (var r = 0; r < pairs.Length; r++)
            pairs[r] = ((long)customers[r] << 32) | (uint)rowOfItem[items[r]];
        Array.Sort(pairs);
        var distinct = pairs.Where((p, i) => i == 0 || p != pairs[i - 1]).ToArray();
        new ColumnTable()
            .Add(PackageLayout.HistoryCustomerColumn, distinct.Select(p => (int)(p >> 32)).ToArray())
            .Add(PackageLayout.HistoryArticleRowColumn, distinct.Select(p => (int)(uint)p).ToArray())
            .WriteParquet(run.Output(PackageLayout.HistoryFile));
    }

    /// <summary>
    /// customers.parquet: each training customer's query features from their last training row, as
    /// the towers see them (categorical ids, normalized numbers): what a request that leaves a feature
    /// out is served with. The month features are the request's own (its month), not stored. With
    /// history features, each customer's last distinct articles as of the end of training (history_0 …, article ids).
    /// </summary>
    static void WriteCustomers(StageRun run, FeatureSet features, Dictionary<string, Vocabulary> vocabularies, TrainingColumns train)
    {
        var last = SourceSet.LastRows(train, features, vocabularies[features.QueryId].Count + 1).Where(r => r >= 0).ToArray();
        var table = new ColumnTable().Add(features.QueryId, last.Select(r => vocabularies[features.QueryId].Decode(train.Ints[features.QueryId][r])).ToArray());
        foreach (var f in features.Query.Where(f => f.Column != features.QueryId && !Recommender.IsRequestMonth(f.Column) && f.Kind != FeatureKind.History)
                     .DistinctBy(f => f.Column))
            table.Add(f.Column, f.IsCategorical ? last.Select(r => train.Ints[f.Column][r]).ToArray() : last.Select(r => train.Floats[f.Column][r]).ToArray());
        if (features.History is { Length: var length, Distinct: var distinct })
        {
            var customers = train.Ints[features.QueryId];
            var everyPurchase = Purchases.From(customers, train.Ints[features.CandidateId], train.Ints[DataFiles.DayColumn],
                vocabularies[features.QueryId].Count + 1, vocabularies[features.CandidateId].Count + 1, int.MaxValue);
            PurchaseHistory.AddTo(table, everyPurchase.LatestArticles(last.Select(r => customers[r]).ToArray(), length, distinct), length);
        }
        table.WriteParquet(run.Output(PackageLayout.CustomersFile));
    }

    /// <summary>The configured HNSW parameters of the inner-product index.</summary>
    sealed record IndexSettings(long Connectivity, long ExpansionAdd, long ExpansionSearch)
    {
        public static IndexSettings From(PipelineConfig config) =>
            new(config.Get(ConfigSchema.Package.Connectivity), config.Get(ConfigSchema.Package.ExpansionAdd), config.Get(ConfigSchema.Package.ExpansionSearch));
    }

    /// <summary>index.usearch: HNSW over the embeddings augmented for inner product (see <see cref="MaximumInnerProduct"/>).</summary>
    static void WriteIndex(StageRun run, IndexSettings settings, float[] embeddings, int count, int dim)
    {
        using var index = new USearchIndex(MetricKind.L2sq, ScalarKind.Float32, (ulong)dim + 1, (ulong)settings.Connectivity,
            (ulong)settings.ExpansionAdd, (ulong)settings.ExpansionSearch);
        index.Add(Enumerable.Range(0, count).Select(i => (ulong)i).ToArray(), MaximumInnerProduct.Items(embeddings, dim));
        var tmp = run.Output(PackageLayout.IndexFile + ".tmp");
        index.Save(tmp);
        File.Move(tmp, run.Output(PackageLayout.IndexFile));
    }

    /// <summary>package.json, last: format, fingerprints, sizes, the index and its recall, the validation metrics, the config.</summary>
    static void WriteManifest(StageRun run, IndexSettings index, int candidates, int dim, double recall, int recallQueries)
    {
        var manifest = new JsonObject
        {
            ["format_version"] = PackageLayout.FormatVersion,
            ["model_fingerprint"] = run.Store.ReadManifest("train")!.Fingerprint,
            ["evaluation_fingerprint"] = run.Store.ReadManifest("evaluate")!.Fingerprint,
            ["candidates"] = candidates,
            ["dimensions"] = dim,
            ["index"] = new JsonObject
            {
                ["library"] = "USearch (HNSW)",
                ["metric"] = "inner product, searched as squared L2 over vectors augmented with sqrt(max|c|^2 - |c|^2) (queries with 0): the same ranking",
                ["connectivity"] = index.Connectivity,
                ["expansion_add"] = index.ExpansionAdd,
                ["expansion_search"] = index.ExpansionSearch,
                ["recall_at_100"] = recall,
                ["recall_queries"] = recallQueries,
            },
            ["validation_metrics"] = JsonNode.Parse(File.ReadAllText(run.Input("evaluate", "metrics.json"))),
            ["onnx_inputs"] = "one per feature, shape [N]: categorical as int64 ids of vocab.<column>.json (value i-1 has id i, unknown 0); numeric as raw float",
            ["config"] = run.Config.ToYaml(),
        };
        ArtifactStore.WriteAtomic(run.Output(PackageLayout.ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Mean recall@100 of the index against exact top-100 over `sample` seeded-random validation queries.</summary>
    static double MeasureRecall(StageRun run, TwoTowerModel model, IKernels kernels, TrainingColumns val, int sample, float[] embeddings, int count, int dim)
    {
        var rng = new Rng(12345);
        var rows = Enumerable.Range(0, val.RowCount).ToArray();
        rng.Shuffle(rows.AsSpan());
        var queries = TwoTowerModel.Embed(model.Query, kernels, val, rows[..sample]);
        var k = Math.Min(100, count);
        var (exact, _) = kernels.TopK(queries, sample, embeddings, count, dim, k);
        using var index = new USearchIndex(run.Output(PackageLayout.IndexFile));
        double total = 0;
        for (var q = 0; q < sample; q++)
        {
            var truth = exact.AsSpan(q * k, k).ToArray().Select(i => (ulong)i).ToHashSet();
            index.Search(MaximumInnerProduct.Query(queries.AsSpan(q * dim, dim).ToArray()), k, out var keys, out _);
            total += keys.Take(k).Count(truth.Contains) / (double)k;
        }
        return total / sample;
    }
}
