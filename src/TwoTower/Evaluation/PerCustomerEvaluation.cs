using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;

namespace TwoTower.Evaluation;

/// <summary>
/// The H&amp;M competition's view: every validation customer seen in training gets one list per
/// method (each candidate source alone, the blend, all-time popularity), scored against their
/// validation basket with <see cref="BasketMetrics"/>, and the union of the sources is measured as
/// the candidate set it is (its recall and size: it has no order of its own). Sources and blend are
/// built from training purchases only, as of the day after the last. Each customer's union is built
/// once and every method's list read from it; customers are scored in parallel blocks and the
/// means summed in a fixed order (the same figures for any thread count).
/// </summary>
public static class PerCustomerEvaluation
{
    const int Block = 4096;

    /// <summary>Each customer's AP@12 by each method: Ap[m][i] for Customers[i] (vocabulary ids, ascending).</summary>
    public sealed record CustomerAp(int[] Customers, IReadOnlyList<string> Methods, double[][] Ap);

    /// <summary>The union of the sources as a candidate set: the share of each basket's articles it holds, and its size, averaged over the customers.</summary>
    public sealed record UnionRecall(double Recall, double MeanCandidates);

    /// <param name="rowRankSources">Sources whose per-row ranks are wanted (the per-row table's item-to-item baselines).</param>
    /// <returns>The metrics of every method; for each of `rowRankSources` each validation row's rank of its article in the
    /// customer's list (1-based; <see cref="RankMetrics.Miss"/> when not in it; customers not seen in training get the lists of the unknown id);
    /// each customer's AP@12 by each method; and the union's recall.</returns>
    public static (IReadOnlyList<BasketMetrics.Result> Results, IReadOnlyList<(ICandidateSource Source, long[] Ranks)> RowRanks, CustomerAp PerCustomer, UnionRecall Union) Run(ArtifactStore store,
        PipelineConfig config, TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val, FeatureSet features,
        IReadOnlyList<int> ks, IReadOnlySet<string> rowRankSources, IPipelineLog log)
    {
        var valCustomers = val.Ints[features.QueryId];
        var valArticles = val.Ints[features.CandidateId];
        var rows = Enumerable.Range(0, val.RowCount).Where(r => valCustomers[r] != Vocabulary.OutOfVocabulary)
            .Select(r => (Customer: valCustomers[r], Article: valArticles[r])).ToList();
        var baskets = rows.GroupBy(r => r.Customer).ToDictionary(g => g.Key, g => g.Select(r => r.Article).ToHashSet());
        var customers = baskets.Keys.Order().ToList();
        var blended = BlendArtifacts.AtEndOfTraining(store, config, model, kernels, train, customers);
        var length = Math.Max(100, ks.Max());
        log.Info($"Per-customer evaluation: {customers.Count:N0} validation customers seen in training, {rows.Count:N0} of their purchases");

        var sources = blended.Sources.Sources;
        var popular = AllTimePopular(train.Ints[features.CandidateId], length);
        var rowsOf = BasketMetrics.RowArticles(rows);
        var valRowsOf = Enumerable.Range(0, val.RowCount).GroupBy(r => valCustomers[r]).ToDictionary(g => g.Key, g => g.ToArray());
        var ranked = sources.Select((source, s) => (source, s)).Where(x => rowRankSources.Contains(x.source.Name)).ToArray();
        var rowRanks = ranked.Select(_ => new long[val.RowCount]).ToArray();
        var means = sources.Select(x => x.Name).Append("blend").Append("popularity (all time)")
            .Select(name => new BasketMetrics.Means(name, ks)).ToArray();
        var unionMeans = new BasketMetrics.Means("union of the sources", ks);

        // One customer: the union once, each method's list from it, each list's terms of the means, and the union's (its recall and size).
        (BasketMetrics.CustomerScore[] Lists, BasketMetrics.CustomerScore Union) Scores(int customer)
        {
            var union = blended.Sources.Union(customer);
            var lists = sources.Select((_, s) => SourceList(union, s)).Append(blended.Recommend(customer, union, length)).Append(popular);
            for (var x = 0; x < ranked.Length; x++)
                WriteRowRanks(SourceList(union, ranked[x].s), valRowsOf[customer], valArticles, rowRanks[x]);
            return (lists.Select(list => BasketMetrics.Score(list, baskets[customer], rowsOf[customer], ks)).ToArray(),
                BasketMetrics.Score(union.Select(c => c.Article).ToList(), baskets[customer], rowsOf[customer], ks));
        }
        // In the baskets' order: the order the means have always been summed in.
        var order = baskets.Keys.ToArray();
        var scores = new (BasketMetrics.CustomerScore[] Lists, BasketMetrics.CustomerScore Union)[Block];
        var ap = means.Select(_ => new double[order.Length]).ToArray();
        for (var start = 0; start < order.Length; start += Block)
        {
            var count = Math.Min(Block, order.Length - start);
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = config.Threads }, i => scores[i] = Scores(order[start + i]));
            for (var i = 0; i < count; i++)
            {
                for (var m = 0; m < means.Length; m++)
                {
                    means[m].Add(scores[i].Lists[m]);
                    ap[m][start + i] = scores[i].Lists[m].AveragePrecision;
                }
                unionMeans.Add(scores[i].Union);
            }
        }
        var ascending = Enumerable.Range(0, order.Length).OrderBy(i => order[i]).ToArray();
        var perCustomer = new CustomerAp(ascending.Select(i => order[i]).ToArray(), means.Select(m => m.Method).ToArray(),
            ap.Select(values => ascending.Select(i => values[i]).ToArray()).ToArray());
        // Validation rows of customers not seen in training: the lists of the unknown id.
        if (ranked.Length > 0 && valRowsOf.TryGetValue(Vocabulary.OutOfVocabulary, out var unknownRows))
        {
            var union = blended.Sources.Union(Vocabulary.OutOfVocabulary);
            for (var x = 0; x < ranked.Length; x++)
                WriteRowRanks(SourceList(union, ranked[x].s), unknownRows, valArticles, rowRanks[x]);
        }
        var unionResult = unionMeans.Result(rows.Count);
        return (means.Select(m => m.Result(rows.Count)).ToList(), ranked.Select((x, i) => (x.source, rowRanks[i])).ToList(), perCustomer,
            new UnionRecall(unionResult.ListRecall, unionResult.MeanListLength));
    }

    public const string CustomerApFile = "per_customer_ap12.csv";

    /// <summary>Where Evaluate wrote <see cref="CustomerApFile"/> in a store.</summary>
    public static string CustomerApPath(ArtifactStore store) => Path.Combine(store.StageDir("evaluate"), CustomerApFile);

    /// <summary>
    /// per_customer_ap12.csv: a row per customer (their id as in the data), a column per method, AP@12
    /// written to round-trip. Two runs on the same validation data pair up by customer id, so a
    /// difference of their MAP@12 gets a paired standard error (README "Candidates and the blend").
    /// </summary>
    public static string CustomerApCsv(CustomerAp ap, Vocabulary customers)
    {
        var csv = new System.Text.StringBuilder("customer_id");
        foreach (var method in ap.Methods)
            csv.Append(',').Append(CsvFile.Field(method));
        csv.Append('\n');
        for (var i = 0; i < ap.Customers.Length; i++)
        {
            csv.Append(CsvFile.Field(customers.Decode(ap.Customers[i])));
            foreach (var values in ap.Ap)
                csv.Append(',').Append(values[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            csv.Append('\n');
        }
        return csv.ToString();
    }

    /// <summary>Source s's own list, read back from the union: the articles it proposed, in its order.</summary>
    static List<int> SourceList(List<UnionCandidate> union, int s) =>
        union.Where(c => !float.IsNaN(c.Ranks[s])).OrderBy(c => c.Ranks[s]).Select(c => c.Article).ToList();

    static void WriteRowRanks(List<int> list, int[] valRows, int[] valArticles, long[] ranks)
    {
        foreach (var r in valRows)
        {
            var at = list.IndexOf(valArticles[r]);
            ranks[r] = at < 0 ? RankMetrics.Miss : at + 1;
        }
    }

    static List<int> AllTimePopular(int[] articles, int count) =>
        articles.GroupBy(a => a).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Take(count).Select(g => g.Key).ToList();
}
