using nietras.SeparatedValues;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Tuning;
using TwoTower.Pipeline;

namespace TwoTower.Tests;

/// <summary>The Backtest target on small built-in data in H&amp;M's raw layout.</summary>
public sealed class BacktestTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-backtest-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string BacktestDir => Path.Combine(dir, "backtest");

    PipelineConfig Config(params string[] more) =>
        PipelineConfig.Parse("", "test", ["data.format=hm_raw", $"data.dir={dir}/data", "synth.scale=0.02", "train.epochs=1", "train.batch_size=256",
            "threads=2", "blend.trees=20", "backtest.windows=2", .. more]);

    [Fact]
    public void EachWindowIsTrainedOnTheDaysBeforeItAndPairedWithItsBaselineRun()
    {
        var config = Config("backtest.baseline=[train.learning_rate=0.05]");
        Synthesizer.EnsureData(config, new RecordingLog());

        var log = new RecordingLog();
        var windows = Backtest.Run(config, BacktestDir, log);

        // Independent: the transactions file's dates, read as text.
        var days = File.ReadLines(Path.Combine(dir, "data", "transactions_train.csv")).Skip(1)
            .Select(line => DateOnly.ParseExact(line[..10], "yyyy-MM-dd").DayNumber).ToArray();
        Assert.Equal([0, 7], windows.Select(w => w.OffsetDays));
        for (var w = 0; w < 2; w++)
        {
            var (first, last) = (days.Max() - 7 * w - 6, days.Max() - 7 * w);
            var run = new ArtifactStore(Path.Combine(BacktestDir, $"offset-{7 * w:D3}", "run"));
            var train = ColumnTable.ReadParquet(Path.Combine(run.StageDir("ingest"), "train.parquet")).Ints(DataFiles.DayColumn);
            var val = ColumnTable.ReadParquet(Path.Combine(run.StageDir("ingest"), "val.parquet")).Ints(DataFiles.DayColumn);
            Assert.Equal(days.Count(d => d < first), train.Length);
            Assert.Equal(days.Count(d => d >= first && d <= last), val.Length);
            Assert.True(val.Length > 0);

            var baseline = new ArtifactStore(Path.Combine(BacktestDir, $"offset-{7 * w:D3}", "baseline"));
            Assert.Equal(0.05, LearningRate(baseline));
            Assert.Equal((double)ConfigSchema.Train.LearningRate.Key.Default, LearningRate(run));
            Assert.Equal(PairedComparison.Compare(PerCustomerEvaluation.CustomerApPath(run), PerCustomerEvaluation.CustomerApPath(baseline)), windows[w].Rows);
        }

        // results.csv: a row per window and method, then each method pooled over the windows.
        var rows = CsvFile.Read(Path.Combine(BacktestDir, Backtest.ResultsFile),
            reader => reader.Enumerate(r => (Window: r["window"].ToString(), Method: r["method"].ToString(), Difference: r["difference"].ToString())).ToList());
        var methods = windows[0].Rows.Select(r => r.Method).ToList();
        Assert.Equal(3 * methods.Count, rows.Count);
        var pooled = Backtest.Pooled(windows);
        Assert.Equal(methods, pooled.Select(r => r.Method));
        Assert.Equal(pooled.Select(r => r.Difference.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            rows.Where(r => r.Window == "pooled").Select(r => r.Difference));
        Assert.Contains(pooled, r => r.Method == "two_tower" && r.Difference != 0);

        // The console's difference table leaves out the methods the learning rate does not touch.
        var differences = string.Join("\n", log.Lines).Split("Against the baseline")[1].Split('\n')[2];
        Assert.Contains("two_tower", differences);
        Assert.DoesNotContain("buy_again", differences);

        // A second run recomputes nothing: every window's stages are up to date.
        var written = Directory.EnumerateFiles(BacktestDir, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) != Backtest.ResultsFile).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Assert.Equal(windows, Backtest.Run(config, BacktestDir, new RecordingLog()), new WindowComparer());
        Assert.All(written, f => Assert.Equal(f.Value, File.GetLastWriteTimeUtc(f.Key)));
    }

    /// <summary>The learning rate the store's model was trained with, as Train recorded its config.</summary>
    static double LearningRate(ArtifactStore store) =>
        PipelineConfig.Load(Path.Combine(store.StageDir("train"), "config.yaml")).Get(ConfigSchema.Train.LearningRate);

    sealed class WindowComparer : IEqualityComparer<Backtest.Window>
    {
        public bool Equals(Backtest.Window? a, Backtest.Window? b) => a!.OffsetDays == b!.OffsetDays && a.Rows.SequenceEqual(b.Rows);
        public int GetHashCode(Backtest.Window w) => w.OffsetDays;
    }

    [Theory]
    [InlineData("data.format=notebook_csv", "'data.format': Backtest moves the validation days back")]
    [InlineData("raw.split=random", "'raw.split': Backtest needs raw.split: time")]
    [InlineData("data.split=tuning", "'data.split': Backtest reports on validation windows")]
    [InlineData("backtest.baseline=[raw.validation_offset_days=3]", "raw.validation_offset_days is set by Backtest itself")]
    [InlineData("backtest.baseline=[train.learning_rat=0.05]", "'backtest.baseline': --set train.learning_rat=0.05: unknown key 'train.learning_rat'")]
    [InlineData("backtest.baseline=[features.query.history.length=0]", "'backtest.baseline': backtest:")]
    public void ConfigsItCannotBacktestAreRefusedByKey(string setting, string expected)
    {
        // The history with the repeat bias: a baseline without history must turn both off, together.
        var error = Assert.Throws<PipelineError>(() => Backtest.Run(Config(setting, "features.query.history.length=5", "features.query.history.repeat_bias=true"),
            BacktestDir, new RecordingLog()));
        Assert.Contains(expected, error.Message);
        Assert.False(Directory.Exists(BacktestDir));
    }

    [Fact]
    public void BaselineSettingsAreCheckedTogether()
    {
        var config = Config("features.query.history.length=5", "features.query.history.repeat_bias=true",
            "backtest.baseline=[features.query.history.length=0, features.query.history.repeat_bias=false]");
        Backtest.Check(config);   // each alone is refused (above); both together are the run without history
    }
}
