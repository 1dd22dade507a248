using TwoTower.Model;

namespace TwoTower.Evaluation;

/// <summary>The report's PNG plots, drawn with ScottPlot.</summary>
public static class Plots
{
    public static void Loss(string path, IReadOnlyList<EpochStats> history)
    {
        var plot = new ScottPlot.Plot();
        var line = plot.Add.Scatter(history.Select(h => (double)h.Epoch).ToArray(), history.Select(h => h.LossPerExample).ToArray());
        line.LegendText = "training loss per example";
        var validated = history.Where(h => h.ValidationHitAt != null).ToArray();
        if (validated.Length > 0)
        {
            var k = validated[0].ValidationHitAt!.Keys.Max();
            var hits = plot.Add.Scatter(validated.Select(h => (double)h.Epoch).ToArray(), validated.Select(h => h.ValidationHitAt![k]).ToArray());
            hits.LegendText = $"validation hit@{k} (right axis)";
            hits.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = $"validation hit@{k}";
        }
        plot.Title(history.Any(h => h.ValidationHitAt != null) ? "Training loss and validation accuracy" : "Training loss");
        plot.XLabel("epoch");
        plot.YLabel("loss per example (nats)");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
        plot.ShowLegend();
        Save(plot, path);
    }

    public static void HitAtK(string path, IReadOnlyList<int> ks, IReadOnlyList<MethodScores> methods) =>
        AtK(path, "Top-k accuracy on validation transactions", "hit@k", ks, methods.Select(m => (m.Name, (Func<int, double>)(k => m.Metrics.HitAt[k]))));

    public static void RecallAtK(string path, IReadOnlyList<int> ks, IReadOnlyList<BasketMetrics.Result> methods) =>
        AtK(path, "Recall of each validation customer's basket in their top k", "recall@k", ks,
            methods.Select(m => ($"{m.Method} (MAP@12 {m.Map12:F4})", (Func<int, double>)(k => m.RecallAt[k]))));

    /// <summary>One line per method over the cut-offs k (log scale).</summary>
    static void AtK(string path, string title, string yLabel, IReadOnlyList<int> ks, IEnumerable<(string Label, Func<int, double> ValueAt)> methods)
    {
        var plot = new ScottPlot.Plot();
        var xs = ks.Select(k => Math.Log10(k)).ToArray();
        foreach (var (label, valueAt) in methods)
        {
            var line = plot.Add.Scatter(xs, ks.Select(valueAt).ToArray());
            line.LegendText = label;
            line.MarkerSize = 7;
        }
        plot.Title(title);
        plot.XLabel("k (log scale)");
        plot.YLabel(yLabel);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(xs, ks.Select(k => k.ToString()).ToArray());
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        Save(plot, path);
    }

    static void Save(ScottPlot.Plot plot, string path)
    {
        var tmp = path + ".tmp.png";
        plot.SavePng(tmp, 900, 560);
        File.Move(tmp, path, overwrite: true);
    }
}
