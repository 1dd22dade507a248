using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Evaluation;

/// <summary>
/// Evaluate: TFRS FactorizedTopK over the whole catalogue of training articles, beside the
/// popularity, buy-again and (expected) random baselines on the same validation rows.
/// Writes metrics.json, report.md, loss.png and hit_at_k.png.
/// </summary>
public sealed class EvaluateStage : Stage
{
    public override string Name => "evaluate";
    public override string CodeVersion => "evaluate-1";
    public override IReadOnlyList<string> ConfigKeys => ["evaluate", "threads", "features"];
    public override IReadOnlyList<string> Upstream => ["train"];

    public sealed record Scores(string Name, RankMetrics.Result Metrics);

    public sealed record Report(
        string ModelFingerprint, int ValidationRows, int Candidates, double ScoringSeconds,
        IReadOnlyList<int> Ks, IReadOnlyList<Scores> Methods, IReadOnlyList<Scores> ModelBySubset);

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var features = FeatureSet.From(config);
        var ks = config.IntList("evaluate.ks").Select(k => (int)k).Order().ToArray();
        var model = TrainStage.LoadTrained(run.Store, config);
        var train = TrainingColumns.From(ColumnTable.ReadParquet(run.Input("normalize", "train.parquet")));
        var val = TrainingColumns.From(ColumnTable.ReadParquet(run.Input("normalize", "val.parquet")));
        using var kernels = TrainStage.CreateKernels(config, run.Log);

        var watch = Stopwatch.StartNew();
        var modelRanks = ModelRanks(model, kernels, train, val, features, out var catalogue);
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

        var methods = new List<Scores>
        {
            new("model", RankMetrics.Compute(modelRanks, ks)),
            new("popularity", RankMetrics.Compute(popularityRanks, ks)),
            new("buy again", RankMetrics.Compute(buyAgainRanks, ks)),
            new("random (expected)", RankMetrics.RandomExpected(catalogue, inCatalogue, val.RowCount, ks)),
        };
        long[] Subset(Func<int, bool> keep) => Enumerable.Range(0, val.RowCount).Where(keep).Select(r => modelRanks[r]).ToArray();
        var subsets = new List<Scores>
        {
            new("customers seen in training", RankMetrics.Compute(Subset(r => valCustomers[r] != Vocabulary.OutOfVocabulary), ks)),
            new("customers not seen in training", RankMetrics.Compute(Subset(r => valCustomers[r] == Vocabulary.OutOfVocabulary), ks)),
            new("articles seen in training", RankMetrics.Compute(Subset(r => valItems[r] != Vocabulary.OutOfVocabulary), ks)),
            new("articles not seen in training", RankMetrics.Compute(Subset(r => valItems[r] == Vocabulary.OutOfVocabulary), ks)),
        };
        var report = new Report(run.Store.ReadManifest("train")!.Fingerprint, val.RowCount, catalogue, seconds, ks, methods, subsets);

        var options = new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        ArtifactStore.WriteAtomic(run.Output("metrics.json"), JsonSerializer.Serialize(report, options));
        var table = MarkdownTable(report);
        ArtifactStore.WriteAtomic(run.Output("report.md"), table);
        var history = JsonSerializer.Deserialize<List<EpochStats>>(File.ReadAllText(run.Input("train", TrainStage.HistoryFile)))!;
        Plots.Loss(run.Output("loss.png"), history);
        Plots.HitAtK(run.Output("hit_at_k.png"), ks, methods);
        run.Log.Info(table);
    }

    /// <summary>Rank of each validation positive among the distinct training articles (TFRS FactorizedTopK).</summary>
    public static long[] ModelRanks(TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val,
        FeatureSet features, out int catalogue)
    {
        var candidateRows = CatalogueRows(train.Ints[features.CandidateId]);
        catalogue = candidateRows.Length;
        var dim = model.Candidate.OutputDim;
        var candidates = TwoTowerModel.Embed(model.Candidate, kernels, train, candidateRows);
        var everyRow = Enumerable.Range(0, val.RowCount).ToArray();
        var queries = TwoTowerModel.Embed(model.Query, kernels, val, everyRow);
        var positives = TwoTowerModel.Embed(model.Candidate, kernels, val, everyRow);
        var counts = new int[val.RowCount];
        using (var q = kernels.Upload(queries))
        using (var c = kernels.Upload(candidates))
        using (var p = kernels.Upload(positives))
        using (var n = kernels.Upload(counts))
        {
            kernels.CountScoresAbove(q, val.RowCount, c, catalogue, dim, p, n);
            kernels.CopyToHost(n, counts);
        }
        // A NaN or infinite positive score (count −1) is a miss, never a hit.
        return counts.Select(c => c < 0 ? RankMetrics.Miss : c + 1L).ToArray();
    }

    /// <summary>The candidate set: the first training row of each distinct article (the notebook's drop_duplicates), in row order.</summary>
    public static int[] CatalogueRows(int[] trainItems)
    {
        var firstRow = new Dictionary<int, int>();
        for (var r = 0; r < trainItems.Length; r++)
            firstRow.TryAdd(trainItems[r], r);
        return firstRow.Values.Order().ToArray();
    }

    public static string MarkdownTable(Report report)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        void Table(string title, IReadOnlyList<Scores> rows)
        {
            sb.Append($"\n### {title}\n\n| | rows | ").Append(string.Join(" | ", report.Ks.Select(k => $"hit@{k}")))
              .Append($" | MRR@{report.Ks.Max()} | ").Append(string.Join(" | ", report.Ks.Select(k => $"NDCG@{k}"))).Append(" |\n");
            sb.Append("|---|---:|").Append(string.Concat(Enumerable.Repeat("---:|", 2 * report.Ks.Count + 1))).Append('\n');
            foreach (var s in rows)
            {
                sb.Append($"| {s.Name} | {s.Metrics.Rows:N0} | ")
                  .Append(string.Join(" | ", report.Ks.Select(k => F(s.Metrics.HitAt[k])))).Append($" | {F(s.Metrics.Mrr)} | ")
                  .Append(string.Join(" | ", report.Ks.Select(k => F(s.Metrics.NdcgAt[k])))).Append(" |\n");
            }
        }
        sb.Append($"## Retrieval evaluation\n\n{report.ValidationRows:N0} validation transactions, {report.Candidates:N0} candidate articles " +
                  $"(every distinct training article), exact full-catalogue scoring in {report.ScoringSeconds:F2} s.\n" +
                  "A row is a hit at k when fewer than k candidates score strictly higher than its positive (TFRS FactorizedTopK).\n");
        Table("Model vs baselines", report.Methods);
        Table("Model by subset", report.ModelBySubset);
        return sb.ToString();
    }
}
