using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;
using TwoTower.Stages;

namespace TwoTower.Tuning;

/// <summary>
/// The Sweep target: tries the grid of sweep.space (or a seeded sample of sweep.trials points) on
/// the training period alone. Each trial is the pipeline up to Evaluate with its settings and
/// data.split: tuning (the last data.tuning_days of the training data are the tuning set; the
/// validation data is never used), scored by sweep.metric of sweep.method in Evaluate's
/// per-customer table. With sweep.windows N &gt; 1 a trial is N such runs, on the tuning period and the
/// N−1 periods before it (raw.validation_offset_days moved back by data.tuning_days each time: every
/// run trained on the days before its period), and its figure is their mean. Why: one week of real
/// purchases is too few customers to tell two settings apart, and every period lies before the
/// validation data, so more of them never leak. Trials live in artifacts/sweep/trials/&lt;id&gt;/ (the
/// id hashes the settings; earlier periods in …/&lt;id&gt;/offset-NNN/) as stores of their own: a trial
/// that ran is not recomputed, a killed one resumes where its stages stopped, and a stage whose
/// settings a trial shares with another is copied from it, not rerun. Writes results.csv (trial,
/// settings, figure, each period's figure, seconds) and best.pipeline.yaml (the config with the best
/// trial's settings, to pass with --config).
/// </summary>
public static class Sweep
{
    public const string ResultsFile = "results.csv";
    public const string BestConfigFile = "best.pipeline.yaml";
    const string TrialFile = "trial.json";

    /// <param name="Settings">"key=value" overrides, in sweep.space's order.</param>
    public sealed record Trial(string Id, IReadOnlyList<string> Settings);

    /// <param name="WindowFigures">The tuning periods' figures, the latest first.</param>
    /// <param name="Seconds">Time to compute it (a cached trial keeps the time of the run that computed it).</param>
    public sealed record TrialResult(Trial Trial, IReadOnlyList<double> WindowFigures, double Seconds, bool Cached)
    {
        /// <summary>The trial's figure: the mean of its periods'.</summary>
        public double Figure => WindowFigures.Average();
    }

    static readonly string[] NotSweepable = [ConfigSchema.Data.Split.Name, ConfigSchema.Data.TuningDays.Name];

    /// <summary>The trials sweep.space and sweep.trials describe, each setting checked as --set would check it.</summary>
    public static List<Trial> Trials(PipelineConfig config)
    {
        var space = config.Get(ConfigSchema.Sweep.Space);
        if (space.Count == 0)
            throw config.ErrorAt(ConfigSchema.Sweep.Space.Key, "nothing to try: list one entry per key, e.g. [\"train.learning_rate=0.05|0.1\"]");
        var axes = new List<string[]>();
        foreach (var entry in space)
        {
            var (key, alternatives) = PipelineConfig.SplitSetting(entry);
            var values = key.Length > 0 ? alternatives.Split('|').Select(v => v.Trim()).ToArray() : [];
            if (key.Length == 0 || values.Any(v => v.Length == 0))
                throw config.ErrorAt(ConfigSchema.Sweep.Space.Key, $"'{entry}': expected key=value|value|..., e.g. train.learning_rate=0.05|0.1");
            if (key.StartsWith("sweep.", StringComparison.Ordinal) || NotSweepable.Contains(key) ||
                config.Get(ConfigSchema.Sweep.Windows) > 1 && key == ConfigSchema.Raw.ValidationOffsetDays.Name)
                throw config.ErrorAt(ConfigSchema.Sweep.Space.Key, $"'{entry}': {key} is set by Sweep itself, not tried");
            if (axes.Any(a => a[0].StartsWith(key + "=", StringComparison.Ordinal)))
                throw config.ErrorAt(ConfigSchema.Sweep.Space.Key, $"'{entry}': {key} is listed twice");
            var settings = values.Distinct().Select(v => $"{key}={v}").ToArray();
            foreach (var setting in settings)
            {
                try
                {
                    // On top of the config: a setting may need another key of it (the repeat bias needs a history length).
                    PipelineConfig.Parse(config.ToYaml(), "sweep", [setting]);
                }
                catch (PipelineError e)
                {
                    throw config.ErrorAt(ConfigSchema.Sweep.Space.Key, $"'{entry}': {e.Message}");
                }
            }
            axes.Add(settings);
        }
        var grid = axes.Aggregate(new List<string[]> { Array.Empty<string>() },
            (points, axis) => points.SelectMany(p => axis.Select(setting => (string[])[.. p, setting])).ToList());
        var sample = (int)config.Get(ConfigSchema.Sweep.Trials);
        if (sample > 0 && sample < grid.Count)
        {
            var order = Enumerable.Range(0, grid.Count).ToArray();
            new Rng((ulong)config.Get(ConfigSchema.Sweep.Seed)).Shuffle(order.AsSpan());
            grid = order.Take(sample).Order().Select(i => grid[i]).ToList();
        }
        return grid.Select(settings => new Trial(Id(settings), settings)).ToList();
    }

    /// <summary>The trial's folder name: a hash of its settings, so that the same settings find the same trial.</summary>
    static string Id(IEnumerable<string> settings) =>
        Convert.ToHexStringLower(XxHash128.Hash(Encoding.UTF8.GetBytes(string.Join('\n', settings.Order(StringComparer.Ordinal)))))[..12];

    /// <summary>A trial's config: the sweep's config with the trial's settings, on the tuning split (of window's period: <see cref="OffsetDays"/>).</summary>
    public static PipelineConfig TrialConfig(PipelineConfig config, Trial trial, int window = 0) =>
        PipelineConfig.Parse(config.ToYaml(), "sweep", [.. trial.Settings, $"{ConfigSchema.Data.Split.Name}=tuning",
            .. window == 0 ? Array.Empty<string>() : [$"{ConfigSchema.Raw.ValidationOffsetDays.Name}={OffsetDays(config, window)}"]]);

    /// <summary>The raw.validation_offset_days of the run on tuning period `window` (0: the latest, the config's own).</summary>
    static long OffsetDays(PipelineConfig config, int window) =>
        config.Get(ConfigSchema.Raw.ValidationOffsetDays) + window * config.Get(ConfigSchema.Data.TuningDays);

    /// <summary>The store of the trial's run on tuning period `window`: the trial's folder, or a folder in it for an earlier period.</summary>
    static ArtifactStore WindowStore(PipelineConfig config, string trialDir, int window) =>
        new(window == 0 ? trialDir : EvaluationRun.OffsetFolder(trialDir, OffsetDays(config, window)));

    public static IReadOnlyList<TrialResult> Run(PipelineConfig config, string sweepDir, IPipelineLog log)
    {
        var trials = Trials(config);
        var method = config.Get(ConfigSchema.Sweep.Method);
        var metric = config.Get(ConfigSchema.Sweep.Metric);
        var windows = config.Get(ConfigSchema.Sweep.Windows);
        if (windows > 1)
            Backtest.CheckMovableSplit(config, "Sweep with sweep.windows > 1");
        log.Info($"Sweep: {trials.Count} trials on {TuningPeriods(config)}, maximising {metric} of {method} (results in {sweepDir})");
        var trialsDir = Path.Combine(sweepDir, "trials");
        var results = new List<TrialResult>();
        for (var i = 0; i < trials.Count; i++)
        {
            log.Info($"Sweep: trial {i + 1} of {trials.Count} ({trials[i].Id}): {string.Join(", ", trials[i].Settings)}");
            results.Add(RunTrial(config, trials[i], trialsDir, log));
            log.Info($"Sweep: trial {i + 1}: {metric} of {method} on the tuning days {results[^1].Figure:F4}" +
                     (results[^1].Cached ? " (done before: not recomputed)" : $" ({results[^1].Seconds:F0} s)"));
        }
        WriteResults(sweepDir, results, config, log);
        return results;
    }

    /// <summary>"the last 7 days of the training data", or with sweep.windows the periods and the days they span.</summary>
    static string TuningPeriods(PipelineConfig config)
    {
        var (days, windows) = (config.Get(ConfigSchema.Data.TuningDays), config.Get(ConfigSchema.Sweep.Windows));
        return windows == 1 ? $"the last {days} days of the training data"
            : $"{windows} periods of {days} days, the last {windows * days} days of the training data, each trained on the days before it";
    }

    /// <summary>
    /// The trial's run on each tuning period (<see cref="EvaluationRun"/>: another trial's stages of the same period
    /// and settings are copied); then its figure, the mean of theirs.
    /// </summary>
    static TrialResult RunTrial(PipelineConfig config, Trial trial, string trialsDir, IPipelineLog log)
    {
        var trialDir = Path.Combine(trialsDir, trial.Id);
        var resultPath = Path.Combine(trialDir, TrialFile);
        var otherTrials = Directory.Exists(trialsDir)
            ? Directory.GetDirectories(trialsDir).Where(d => Path.GetFileName(d) != trial.Id).Order(StringComparer.Ordinal).ToList()
            : [];
        var watch = Stopwatch.StartNew();
        var computed = false;
        var figures = new List<double>();
        var windows = (int)config.Get(ConfigSchema.Sweep.Windows);
        for (var w = 0; w < windows; w++)
        {
            if (windows > 1)
                log.Info($"Sweep: tuning period {w + 1} of {windows}, ending {w * config.Get(ConfigSchema.Data.TuningDays)} days before the validation days begin");
            var store = WindowStore(config, trialDir, w);
            computed |= EvaluationRun.Ensure(store, TrialConfig(config, trial, w), [.. otherTrials.Select(d => WindowStore(config, d, w))], log);
            figures.Add(Figure(Path.Combine(store.StageDir("evaluate"), "metrics.json"), config));
        }
        if (!computed && File.Exists(resultPath))
        {
            var saved = JsonNode.Parse(File.ReadAllText(resultPath))!;
            return new TrialResult(trial, figures, saved["seconds"]!.GetValue<double>(), Cached: true);
        }
        var result = new TrialResult(trial, figures, watch.Elapsed.TotalSeconds, Cached: false);
        ArtifactStore.WriteAtomic(resultPath, new JsonObject
        {
            ["id"] = trial.Id,
            ["settings"] = new JsonArray([.. trial.Settings.Select(s => (JsonNode)s)]),
            ["figure"] = result.Figure,
            ["window_figures"] = new JsonArray([.. figures.Select(f => (JsonNode)f)]),
            ["seconds"] = result.Seconds,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return result;
    }

    /// <summary>The sweep.method that scores new customers served with their purchases (Evaluate's cold-start section).</summary>
    public const string ColdStartMethod = "cold_start";

    /// <summary>
    /// sweep.metric of sweep.method in a metrics.json's per-customer table; for cold_start, the row
    /// hit@100 of the model with the new customers' purchases as history.
    /// </summary>
    internal static double Figure(string metricsPath, PipelineConfig config)
    {
        var method = config.Get(ConfigSchema.Sweep.Method);
        if (method == ColdStartMethod)
            return ColdStartFigure(metricsPath, config);
        var rows = JsonNode.Parse(File.ReadAllText(metricsPath))!["per_customer"]?.AsArray()
            ?? throw new PipelineError($"{metricsPath} has no per-customer table (the data needs purchase dates)");
        var row = rows.FirstOrDefault(r => r!["method"]!.GetValue<string>() == method)
            ?? throw config.ErrorAt(ConfigSchema.Sweep.Method.Key,
                $"'{method}' is not a row of the per-customer table; expected one of: {string.Join(", ", rows.Select(r => r!["method"]!.GetValue<string>()))}");
        return config.Get(ConfigSchema.Sweep.Metric) switch
        {
            "map12" => row["map12"]!.GetValue<double>(),
            "recall_at_100" => row["recall_at"]!["100"]?.GetValue<double>()
                               ?? throw config.ErrorAt(ConfigSchema.Sweep.Metric.Key, "recall_at_100 needs 100 in evaluate.ks"),
            _ => row["row_hit_at100"]!.GetValue<double>(),
        };
    }

    static double ColdStartFigure(string metricsPath, PipelineConfig config)
    {
        if (config.Get(ConfigSchema.Sweep.Metric) != "row_hit_at100")
            throw config.ErrorAt(ConfigSchema.Sweep.Metric.Key, "the cold_start method has only row_hit_at100 (hit@100 per row)");
        var withHistory = JsonNode.Parse(File.ReadAllText(metricsPath))!["cold_start"]?.AsArray().FirstOrDefault()
            ?? throw new PipelineError($"{metricsPath} has no cold-start section: cold_start needs features.query.history and customers new in the tuning days");
        return withHistory["metrics"]!["hit_at"]!["100"]?.GetValue<double>()
               ?? throw config.ErrorAt(ConfigSchema.Sweep.Metric.Key, "row_hit_at100 needs 100 in evaluate.ks");
    }

    /// <summary>results.csv, the console table and best.pipeline.yaml (the best figure; of equal ones, the earlier trial).</summary>
    static void WriteResults(string sweepDir, List<TrialResult> results, PipelineConfig config, IPipelineLog log)
    {
        var metric = config.Get(ConfigSchema.Sweep.Metric);
        var method = config.Get(ConfigSchema.Sweep.Method);
        var csv = new StringBuilder($"trial,id,settings,{metric},window_{metric},seconds\n");
        for (var i = 0; i < results.Count; i++)
            csv.Append(CultureInfo.InvariantCulture, $"{i + 1},{results[i].Trial.Id},{CsvFile.Field(string.Join("; ", results[i].Trial.Settings))},{results[i].Figure:R}," +
                                                     $"{string.Join(' ', results[i].WindowFigures.Select(f => f.ToString("R", CultureInfo.InvariantCulture)))},{results[i].Seconds:F1}\n");
        Directory.CreateDirectory(sweepDir);
        ArtifactStore.WriteAtomic(Path.Combine(sweepDir, ResultsFile), csv.ToString());

        var best = results.Aggregate((a, b) => b.Figure > a.Figure ? b : a);
        var windows = config.Get(ConfigSchema.Sweep.Windows);
        log.Info($"\nSweep results ({metric} of {method} on the tuning days{(windows > 1 ? $", the mean of {windows} periods (each, the latest first)" : "")}; the validation data was not used):");
        for (var i = 0; i < results.Count; i++)
            log.Info($"  {(results[i] == best ? "*" : " ")} {i + 1,3}  {results[i].Figure:F4}" +
                     (windows > 1 ? $" ({string.Join(", ", results[i].WindowFigures.Select(f => f.ToString("F4", CultureInfo.InvariantCulture)))})" : "") +
                     $"  {results[i].Seconds,6:F0} s  {string.Join(", ", results[i].Trial.Settings)}");
        var bestConfig = PipelineConfig.Parse(config.ToYaml(), "sweep", best.Trial.Settings);
        ArtifactStore.WriteAtomic(Path.Combine(sweepDir, BestConfigFile),
            $"# Sweep's best of {results.Count} trials: {string.Join(", ", best.Trial.Settings)}\n" +
            $"# ({metric} of {method} {best.Figure:F4} on {TuningPeriods(config)}). Use it with --config={Path.Combine(sweepDir, BestConfigFile)}\n" +
            bestConfig.ToYaml());
        log.Info($"Best settings: {string.Join(", ", best.Trial.Settings)}; the whole config with them: {Path.Combine(sweepDir, BestConfigFile)}");
    }
}
