using System.Globalization;
using System.Text;

namespace TwoTower.Evaluation;

/// <summary>Evaluate's figures (metrics.json) and their markdown table (report.md).</summary>
public sealed record EvaluationReport(
    string ModelFingerprint, int ValidationRows, int Candidates, double ScoringSeconds,
    IReadOnlyList<int> Ks, IReadOnlyList<MethodScores> Methods, IReadOnlyList<MethodScores> ModelBySubset)
{
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
        return sb.ToString();
    }
}

/// <summary>One method's (or subset's) metrics in the report.</summary>
public sealed record MethodScores(string Name, RankMetrics.Result Metrics);
