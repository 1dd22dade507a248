using System.Globalization;
using System.Text;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Pipeline;
using TwoTower.Stages;

namespace TwoTower.Tuning;

/// <summary>
/// The Backtest target: the pipeline up to Evaluate on backtest.windows validation windows, the latest
/// first, each raw.validation_days long and ending where the next one begins (raw.validation_offset_days
/// 0, 7, 14, … for weeks), each run trained on the days before its window. With backtest.baseline, a
/// second run of every window with those settings, and every method's MAP@12 paired customer by customer
/// (<see cref="PairedComparison"/>), per window and pooled over them all. Why: one week of real purchases
/// has a few hundred customers, too few to tell a difference of 0.005 in MAP@12; several weeks give the
/// power one cannot. Each window is a store of its own (backtest/offset-NNN/run, …/baseline): cached, and a
/// killed backtest resumes. Writes results.csv (a row per window and method, then the pooled rows).
/// </summary>
public static class Backtest
{
    public const string ResultsFile = "results.csv";

    /// <param name="OffsetDays">The window's raw.validation_offset_days: it ends that many days before the data's last day.</param>
    /// <param name="Rows">Each method's figures; without a baseline, NaN in its columns.</param>
    public sealed record Window(int OffsetDays, IReadOnlyList<PairedComparison.Row> Rows);

    static readonly string[] SetByBacktest = [ConfigSchema.Raw.ValidationOffsetDays.Name, ConfigSchema.Data.Split.Name];

    public static IReadOnlyList<Window> Run(PipelineConfig config, string dir, IPipelineLog log)
    {
        Check(config);
        var baseline = config.Get(ConfigSchema.Backtest.Baseline);
        var days = (int)config.Get(ConfigSchema.Raw.ValidationDays);
        var first = (int)config.Get(ConfigSchema.Raw.ValidationOffsetDays);
        var count = (int)config.Get(ConfigSchema.Backtest.Windows);
        log.Info($"Backtest: {count} windows of {days} days, ending {string.Join(", ", Enumerable.Range(0, count).Select(w => first + w * days))} days " +
                 "before the last day" + (baseline.Count > 0 ? $"; each against a baseline run with {string.Join(", ", baseline)}" : "") + $" (in {dir})");
        var windows = new List<Window>();
        for (var w = 0; w < count; w++)
        {
            var offset = first + w * days;
            var windowDir = EvaluationRun.OffsetFolder(dir, offset);
            var offsetSetting = $"{ConfigSchema.Raw.ValidationOffsetDays.Name}={offset}";
            log.Info($"Backtest: window {w + 1} of {count}, ending {offset} days before the last day");
            var run = new ArtifactStore(Path.Combine(windowDir, "run"));
            EvaluationRun.Ensure(run, PipelineConfig.Parse(config.ToYaml(), "backtest", [offsetSetting]), [], log);
            if (baseline.Count == 0)
            {
                windows.Add(new Window(offset, PairedComparison.Map12(PerCustomerEvaluation.CustomerApPath(run))));
                continue;
            }
            log.Info($"Backtest: window {w + 1}, the baseline run");
            var against = new ArtifactStore(Path.Combine(windowDir, "baseline"));
            EvaluationRun.Ensure(against, PipelineConfig.Parse(config.ToYaml(), "backtest", [.. baseline, offsetSetting]), [run], log);
            windows.Add(new Window(offset, PairedComparison.Compare(PerCustomerEvaluation.CustomerApPath(run), PerCustomerEvaluation.CustomerApPath(against))));
        }
        var pooled = baseline.Count > 0 ? Pooled(windows) : [];
        Directory.CreateDirectory(dir);
        ArtifactStore.WriteAtomic(Path.Combine(dir, ResultsFile), Csv(windows, pooled));
        log.Info("\n" + Tables(windows, pooled, baseline).TrimEnd());
        log.Info($"Backtest results: {Path.Combine(dir, ResultsFile)}");
        return windows;
    }

    /// <summary>Backtest moves a time split's validation days: H&amp;M's raw layout with raw.split time, on the given validation part.</summary>
    internal static void Check(PipelineConfig config)
    {
        var baseline = config.Get(ConfigSchema.Backtest.Baseline);
        foreach (var setting in baseline)
        {
            var (key, _) = PipelineConfig.SplitSetting(setting);
            if (key.StartsWith("backtest.", StringComparison.Ordinal) || SetByBacktest.Contains(key))
                throw config.ErrorAt(ConfigSchema.Backtest.Baseline.Key, $"'{setting}': {key} is set by Backtest itself, the same for both runs");
        }
        try
        {
            // Together, as one run takes them: history.length=0 needs repeat_bias=false beside it.
            PipelineConfig.Parse(config.ToYaml(), "backtest", baseline);
        }
        catch (PipelineError e)
        {
            throw config.ErrorAt(ConfigSchema.Backtest.Baseline.Key, e.Message);
        }
        CheckMovableSplit(config, "Backtest");
        if (config.Get(ConfigSchema.Data.Split) != "given")
            throw config.ErrorAt(ConfigSchema.Data.Split.Key, "Backtest reports on validation windows: data.split must be given (Sweep tunes on the tuning days)");
    }

    /// <summary>
    /// Runs on earlier periods (Backtest's windows, Sweep's tuning periods) move the validation days back with
    /// raw.validation_offset_days: H&amp;M's raw layout with a time split. `who` names what needs it.
    /// </summary>
    internal static void CheckMovableSplit(PipelineConfig config, string who)
    {
        if (config.Get(ConfigSchema.Data.Format) != "hm_raw")
            throw config.ErrorAt(ConfigSchema.Data.Format.Key, $"{who} moves the validation days back with raw.validation_offset_days, " +
                                                                "which needs data.format: hm_raw (the built-in data in that layout: --config=data/hm_raw.pipeline.yaml)");
        if (config.Get(ConfigSchema.Raw.Split) != "time")
            throw config.ErrorAt(ConfigSchema.Raw.Split.Key, $"{who} needs raw.split: time (a random split has no days to move back)");
    }

    /// <summary>Every method's comparison pooled over the windows, in the first window's order.</summary>
    public static IReadOnlyList<PairedComparison.Row> Pooled(IReadOnlyList<Window> windows) =>
        windows[0].Rows.Select(r => r.Method)
            .Where(method => windows.All(w => w.Rows.Any(r => r.Method == method)))
            .Select(method => PairedComparison.Pool(windows.Select(w => w.Rows.First(r => r.Method == method)).ToList()))
            .ToList();

    static string Csv(IReadOnlyList<Window> windows, IReadOnlyList<PairedComparison.Row> pooled)
    {
        var csv = new StringBuilder("window,offset_days,method,customers,map12,baseline_map12,difference,standard_error\n");
        string Number(double x) => double.IsNaN(x) ? "" : x.ToString("R", CultureInfo.InvariantCulture);
        void Append(string window, string offset, PairedComparison.Row r) =>
            csv.Append($"{window},{offset},{CsvFile.Field(r.Method)},{r.Customers},{Number(r.Map12)},{Number(r.BaselineMap12)},{Number(r.Difference)},{Number(r.StandardError)}\n");
        for (var w = 0; w < windows.Count; w++)
            foreach (var row in windows[w].Rows)
                Append((w + 1).ToString(CultureInfo.InvariantCulture), windows[w].OffsetDays.ToString(CultureInfo.InvariantCulture), row);
        foreach (var row in pooled)
            Append("pooled", "", row);
        return csv.ToString();
    }

    /// <summary>MAP@12 per window and method; with a baseline, the paired differences and the pooled row.</summary>
    static string Tables(IReadOnlyList<Window> windows, IReadOnlyList<PairedComparison.Row> pooled, IReadOnlyList<string> baseline)
    {
        var methods = windows[0].Rows.Select(r => r.Method).ToArray();
        var text = new StringBuilder();
        void Header(string title)
        {
            text.Append($"{title}\n\n| window ends (days before the last day) | customers | {string.Join(" | ", methods)} |\n");
            text.Append($"|---|---|{string.Concat(methods.Select(_ => "---|"))}\n");
        }
        string Cell(Window w, string method, Func<PairedComparison.Row, string> format) =>
            w.Rows.FirstOrDefault(r => r.Method == method) is { } row ? format(row) : "";
        string Difference(PairedComparison.Row r) => FormattableString.Invariant($"{r.Difference:+0.0000;-0.0000;0.0000} ± {r.StandardError:F4}");

        Header("Backtest: MAP@12 per customer, each window its own run");
        foreach (var w in windows)
            text.Append(FormattableString.Invariant($"| {w.OffsetDays} | {w.Rows[0].Customers:N0} | {string.Join(" | ", methods.Select(m => Cell(w, m, r => r.Map12.ToString("F4", CultureInfo.InvariantCulture))))} |\n"));
        if (baseline.Count == 0)
            return text.ToString();
        // The methods the baseline's settings do not touch (every difference 0, buy_again say) would only fill the table with zeros.
        methods = methods.Where(m => windows.Any(w => w.Rows.Any(r => r.Method == m && (r.Difference != 0 || r.StandardError != 0)))).ToArray();
        text.Append('\n');
        Header($"Against the baseline ({string.Join(", ", baseline)}): difference ± paired SE (methods it changes)");
        foreach (var w in windows)
            text.Append(FormattableString.Invariant($"| {w.OffsetDays} | {w.Rows[0].Customers:N0} | {string.Join(" | ", methods.Select(m => Cell(w, m, Difference)))} |\n"));
        text.Append(FormattableString.Invariant($"| pooled | {pooled.FirstOrDefault()?.Customers ?? 0:N0} | {string.Join(" | ", methods.Select(m => pooled.FirstOrDefault(r => r.Method == m) is { } r ? Difference(r) : ""))} |\n"));
        return text.ToString();
    }
}
