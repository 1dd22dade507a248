using System.Diagnostics;
using System.Text.Json;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;

namespace TwoTower.Stages;

/// <summary>
/// Evaluate: TFRS FactorizedTopK over the whole catalogue of training articles, beside the
/// popularity, buy-again and (expected) random baselines on the same validation rows; with history
/// features, also new customers served with a history passed at request time (<see cref="ColdStart"/>).
/// Writes metrics.json, report.md, loss.png and hit_at_k.png.
/// </summary>
public sealed class EvaluateStage : Stage
{
    public override string Name => "evaluate";
    public override string CodeVersion => "evaluate-7";
    public override IReadOnlyList<string> ConfigKeys => ["evaluate", "threads", "features"];
    public override IReadOnlyList<string> Upstream => ["blend"];

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var features = FeatureSet.From(config);
        var ks = config.Get(ConfigSchema.Evaluate.Ks).Select(k => (int)k).Order().ToArray();
        var model = TrainedModel.Load(run.Store, config);
        var train = TrainingColumns.Read(run.Store, "train");
        var val = TrainingColumns.Read(run.Store, "val");
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, run.Log);

        var watch = Stopwatch.StartNew();
        var modelRanks = CatalogueRanks.Compute(model, kernels, train, val, features, out var catalogue);
        var seconds = watch.Elapsed.TotalSeconds;
        run.Log.Info($"Scored {val.RowCount:N0} validation rows against {catalogue:N0} candidates in {seconds:F2} s");

        var trainItems = train.Ints[features.CandidateId];
        var valItems = val.Ints[features.CandidateId];
        var valCustomers = val.Ints[features.QueryId];
        var itemIds = Math.Max(trainItems.Max(), valItems.Max()) + 1;
        var popularity = Baselines.PopularityRanks(trainItems, itemIds);
        var popularityRanks = valItems.Select(i => popularity[i]).ToArray();
        var buyAgainRanks = Baselines.BuyAgainRanks(train.Ints[features.QueryId], trainItems, valCustomers, valItems, popularity);
        var inCatalogue = valItems.Count(i => popularity[i] != RankMetrics.Miss) / (double)val.RowCount;

        var methods = new List<MethodScores>
        {
            new("model", RankMetrics.Compute(modelRanks, ks)),
            new("popularity", RankMetrics.Compute(popularityRanks, ks)),
            new("buy again", RankMetrics.Compute(buyAgainRanks, ks)),
            new("random (expected)", RankMetrics.RandomExpected(catalogue, inCatalogue, val.RowCount, ks)),
        };
        long[] Subset(Func<int, bool> keep) => Enumerable.Range(0, val.RowCount).Where(keep).Select(r => modelRanks[r]).ToArray();
        var subsets = new List<MethodScores>
        {
            new("customers seen in training", RankMetrics.Compute(Subset(r => valCustomers[r] != Vocabulary.OutOfVocabulary), ks)),
            new("customers not seen in training", RankMetrics.Compute(Subset(r => valCustomers[r] == Vocabulary.OutOfVocabulary), ks)),
            new("articles seen in training", RankMetrics.Compute(Subset(r => valItems[r] != Vocabulary.OutOfVocabulary), ks)),
            new("articles not seen in training", RankMetrics.Compute(Subset(r => valItems[r] == Vocabulary.OutOfVocabulary), ks)),
        };
        IReadOnlyList<BasketMetrics.Result> perCustomer = [];
        PerCustomerEvaluation.UnionRecall? union = null;
        if (train.Ints.ContainsKey(DataFiles.DayColumn))
        {
            // EASE and item-kNN beside the model per row too: the practitioner's first comparison.
            (perCustomer, var rowRanks, var customerAp, union) = PerCustomerEvaluation.Run(run.Store, config, model, kernels, train, val, features, ks,
                new HashSet<string> { SourceSet.EaseName, SourceSet.ItemKnnName }, run.Log);
            ArtifactStore.WriteAtomic(run.Output(PerCustomerEvaluation.CustomerApFile),
                PerCustomerEvaluation.CustomerApCsv(customerAp, Vocabulary.Read(run.Store.StageDir("encode"), features.QueryId)));
            foreach (var (source, ranks) in rowRanks)
                methods.Add(new($"{source.Name} (its top {source.Count})", RankMetrics.Compute(ranks, ks)));
        }
        IReadOnlyList<MethodScores> coldStart = [];
        var coldStartCustomers = 0;
        if (features.History != null)
        {
            var customerCodes = ColumnTable.ReadParquet(run.Input("ingest", "val.parquet")).Ints(features.QueryId);
            coldStart = ColdStart.Evaluate(model, kernels, train, val, customerCodes, features, popularity, ks, out coldStartCustomers);
        }
        var report = new EvaluationReport(run.Store.ReadManifest("train")!.Fingerprint, val.RowCount, catalogue, seconds, ks, methods, subsets, perCustomer)
        {
            ColdStart = coldStart,
            ColdStartCustomers = coldStartCustomers,
            Union = union,
        };

        var options = new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        ArtifactStore.WriteAtomic(run.Output("metrics.json"), JsonSerializer.Serialize(report, options));
        var table = report.MarkdownTable();
        ArtifactStore.WriteAtomic(run.Output("report.md"), table);
        var history = JsonSerializer.Deserialize<List<EpochStats>>(File.ReadAllText(run.Input("train", TrainedModel.HistoryFile)))!;
        Plots.Loss(run.Output("loss.png"), history);
        Plots.HitAtK(run.Output("hit_at_k.png"), ks, methods);
        if (perCustomer.Count > 0)
            Plots.RecallAtK(run.Output("recall_at_k.png"), ks, perCustomer);
        run.Log.Info(table);
    }
}
