using System.Globalization;
using System.Text;

namespace TwoTower.Evaluation;

/// <summary>Evaluate's figures (metrics.json) and their markdown table (report.md).</summary>
public sealed record EvaluationReport(
    string ModelFingerprint, int ValidationRows, int Candidates, double ScoringSeconds,
    IReadOnlyList<int> Ks, IReadOnlyList<MethodScores> Methods, IReadOnlyList<MethodScores> ModelBySubset,
    IReadOnlyList<BasketMetrics.Result> PerCustomer)
{
    /// <summary>With history features: new customers served with their other validation purchases as history (<see cref="Evaluation.ColdStart"/>); else empty.</summary>
    public IReadOnlyList<MethodScores> ColdStart { get; init; } = [];
    public int ColdStartCustomers { get; init; }

    /// <summary>With the per-customer evaluation: the union of the sources as a candidate set (what the blend orders).</summary>
    public PerCustomerEvaluation.UnionRecall? Union { get; init; }

    public string MarkdownTable()
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        void Table(string title, IReadOnlyList<MethodScores> rows)
        {
            sb.Append($"\n### {title}\n\n| | rows | ").Append(string.Join(" | ", Ks.Select(k => $"hit@{k}")))
              .Append($" | MRR@{Ks.Max()} | ").Append(string.Join(" | ", Ks.Select(k => $"NDCG@{k}"))).Append(" |\n");
            sb.Append("|---|---:|").Append(string.Concat(Enumerable.Repeat("---:|", 2 * Ks.Count + 1))).Append('\n');
            foreach (var s in rows)
            {
                sb.Append($"| {s.Name} | {s.Metrics.Rows:N0} | ")
                  .Append(string.Join(" | ", Ks.Select(k => F(s.Metrics.HitAt[k])))).Append($" | {F(s.Metrics.Mrr)} | ")
                  .Append(string.Join(" | ", Ks.Select(k => F(s.Metrics.NdcgAt[k])))).Append(" |\n");
            }
        }
        sb.Append($"## Retrieval evaluation\n\n{ValidationRows:N0} validation transactions, {Candidates:N0} candidate articles " +
                  $"(every distinct training article), exact full-catalogue scoring in {ScoringSeconds:F2} s.\n" +
                  "A row is a hit at k when fewer than k candidates score strictly higher than its positive (TFRS FactorizedTopK).\n");
        Table("Model vs baselines", Methods);
        Table("Model by subset", ModelBySubset);
        if (ColdStart.Count > 0)
        {
            sb.Append($"\nCold start: {ColdStartCustomers:N0} validation customers not seen in training; each of their rows is scored with the customer's " +
                      "other validation purchases up to that day (the rest of the basket included, never the row's own article) as the request's history.\n");
            Table("Cold start (new customers, history passed at request time)", ColdStart);
        }
        if (PerCustomer.Count > 0)
            PerCustomerTable(sb);
        return sb.ToString();
    }

    /// <summary>The H&amp;M competition's metrics per customer: every source alone, their union, the blend and a baseline.</summary>
    void PerCustomerTable(StringBuilder sb)
    {
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        sb.Append($"\n### Per customer (H&M competition metrics)\n\n{PerCustomer[0].Customers:N0} validation customers seen in training; " +
                  "MAP@12 and recall@k over each customer's basket (distinct articles bought in the validation period); row hit@100: share of their " +
                  "validation purchases in their top 100; list recall: of the whole list.\n\n");
        sb.Append("| | MAP@12 | ").Append(string.Join(" | ", Ks.Select(k => $"recall@{k}"))).Append(" | row hit@100 | list recall | list length |\n");
        sb.Append("|---|").Append(string.Concat(Enumerable.Repeat("---:|", Ks.Count + 4))).Append('\n');
        foreach (var r in PerCustomer)
            sb.Append($"| {r.Method} | {F(r.Map12)} | ").Append(string.Join(" | ", Ks.Select(k => F(r.RecallAt[k]))))
              .Append($" | {F(r.RowHitAt100)} | {F(r.ListRecall)} | {r.MeanListLength:F0} |\n");
        if (Union is { } union)
            sb.Append($"\nThe union of the sources, the candidates the blend orders ({union.MeanCandidates:F0} per customer on average), holds " +
                      $"{F(union.Recall)} of each basket's articles (the mean share): the most any order of it can find.\n");
    }
}

/// <summary>One method's (or subset's) metrics in the report.</summary>
public sealed record MethodScores(string Name, RankMetrics.Result Metrics);
