using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Unum.USearch;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Serving;

/// <summary>
/// Package: everything needed to serve, usable without this repository's training code:
/// package.json (format, fingerprints, config, validation metrics, index recall), the weights,
/// vocabularies and normalization statistics, candidates.parquet (article id, item features, the
/// embedding as e0..e15), index.usearch (HNSW, inner product), history.parquet (training
/// purchases, for "exclude already bought"), query_tower.onnx / candidate_tower.onnx and the
/// OpenSearch k-NN mapping and _bulk file.
/// </summary>
public sealed class PackageStage : Stage
{
    public override string Name => "package";
    public override string CodeVersion => "package-1";
    public override IReadOnlyList<string> ConfigKeys => ["package", "opensearch", "features"];
    public override IReadOnlyList<string> Upstream => ["evaluate"];

    public const string ManifestFile = "package.json";
    public const string CandidatesFile = "candidates.parquet";
    public const string IndexFile = "index.usearch";
    public const string HistoryFile = "history.parquet";
    public const string FormatVersion = "twotower-package-1";

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var features = FeatureSet.From(config);
        var vocabularies = features.CategoricalColumns.ToDictionary(c => c, c => EncodeStage.ReadVocabulary(run.Store.StageDir("encode"), c));
        var model = TrainStage.LoadTrained(run.Store, config);
        using var kernels = TrainStage.CreateKernels(config, run.Log);
        var train = TrainingColumns.From(ColumnTable.ReadParquet(run.Input("normalize", "train.parquet")));
        var normalization = NormalizeStage.ReadStats(run.Store.StageDir("normalize"));

        foreach (var file in new[] { ("train", TrainStage.WeightsFile), ("train", "config.yaml"), ("normalize", NormalizeStage.StatsFile) }
                     .Concat(features.CategoricalColumns.Select(c => ("encode", EncodeStage.VocabFile(c)))))
            File.Copy(run.Input(file.Item1, file.Item2), run.Output(file.Item2));

        // Candidates: each distinct training article with its first row's features, as Evaluate scores them.
        var items = train.Ints[features.CandidateId];
        var rows = EvaluateStage.CatalogueRows(items);
        var dim = model.Candidate.OutputDim;
        var embeddings = TwoTowerModel.Embed(model.Candidate, kernels, train, rows);
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
        candidates.WriteParquet(run.Output(CandidatesFile));

        // Training purchases by customer id and candidate row, for "exclude already bought".
        var rowOfItem = rows.Select((r, i) => (items[r], i)).ToDictionary(x => x.Item1, x => x.i);
        var customers = train.Ints[features.QueryId];
        var pairs = Enumerable.Range(0, train.RowCount).Select(r => (customers[r], rowOfItem[items[r]])).Distinct().ToArray();
        new ColumnTable()
            .Add(features.QueryId, pairs.Select(p => vocabularies[features.QueryId].Decode(p.Item1)).ToArray())
            .Add("article_row", pairs.Select(p => p.Item2).ToArray())
            .WriteParquet(run.Output(HistoryFile));

        var connectivity = config.Int("package.connectivity");
        var expansionAdd = config.Int("package.expansion_add");
        var expansionSearch = config.Int("package.expansion_search");
        using (var index = new USearchIndex(MetricKind.L2sq, ScalarKind.Float32, (ulong)dim + 1, (ulong)connectivity, (ulong)expansionAdd, (ulong)expansionSearch))
        {
            index.Add(Enumerable.Range(0, rows.Length).Select(i => (ulong)i).ToArray(), MaximumInnerProduct.Items(embeddings, dim));
            var tmp = run.Output(IndexFile + ".tmp");
            index.Save(tmp);
            File.Move(tmp, run.Output(IndexFile));
        }

        OnnxExport.Write(model.Query, normalization, run.Output("query_tower.onnx"));
        OnnxExport.Write(model.Candidate, normalization, run.Output("candidate_tower.onnx"));
        Directory.CreateDirectory(run.Output("opensearch"));
        OpenSearchExport.Write(run.Output("opensearch"), config, candidates, features.CandidateId, dim);

        // Recall@100 of the index against exact search on sampled validation queries.
        var val = TrainingColumns.From(ColumnTable.ReadParquet(run.Input("normalize", "val.parquet")));
        var recall = MeasureRecall(run, model, kernels, val, embeddings, rows.Length, dim);
        var floor = config.Float("package.recall_floor");
        run.Log.Info($"Index recall@100 against exact search: {recall:F4} (floor {floor})");
        if (recall < floor)
            throw new PipelineError($"the index's recall@100 is {recall:F4}, below package.recall_floor {floor}: " +
                                    "raise package.expansion_search or package.connectivity");

        var manifest = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["model_fingerprint"] = run.Store.ReadManifest("train")!.Fingerprint,
            ["evaluation_fingerprint"] = run.Store.ReadManifest("evaluate")!.Fingerprint,
            ["candidates"] = rows.Length,
            ["dimensions"] = dim,
            ["index"] = new JsonObject
            {
                ["library"] = "USearch (HNSW)",
                ["metric"] = "inner product, searched as squared L2 over vectors augmented with sqrt(max|c|^2 - |c|^2) (queries with 0): the same ranking",
                ["connectivity"] = connectivity,
                ["expansion_add"] = expansionAdd,
                ["expansion_search"] = expansionSearch,
                ["recall_at_100"] = recall,
                ["recall_queries"] = Math.Min(val.RowCount, config.Int("package.recall_queries")),
            },
            ["validation_metrics"] = JsonNode.Parse(File.ReadAllText(run.Input("evaluate", "metrics.json"))),
            ["onnx_inputs"] = "one per feature, shape [N]: categorical as int64 ids of vocab.<column>.json (value i-1 has id i, unknown 0); numeric as raw float",
            ["config"] = config.ToYaml(),
        };
        ArtifactStore.WriteAtomic(run.Output(ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static double MeasureRecall(StageRun run, TwoTowerModel model, Kernels.IKernels kernels, TrainingColumns val, float[] embeddings, int count, int dim)
    {
        var sample = (int)Math.Min(val.RowCount, run.Config.Int("package.recall_queries"));
        var rng = new Rng(12345);
        var rows = Enumerable.Range(0, val.RowCount).ToArray();
        rng.Shuffle(rows.AsSpan());
        var queries = TwoTowerModel.Embed(model.Query, kernels, val, rows[..sample]);
        var k = Math.Min(100, count);
        var exact = new int[sample * k];
        using (var q = kernels.Upload(queries))
        using (var c = kernels.Upload(embeddings))
        using (var top = kernels.Allocate<int>(sample * k))
        using (var scores = kernels.Allocate<float>(sample * k))
        {
            kernels.TopK(q, sample, c, count, dim, k, top, scores);
            kernels.CopyToHost(top, exact);
        }
        using var index = new USearchIndex(run.Output(IndexFile));
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
