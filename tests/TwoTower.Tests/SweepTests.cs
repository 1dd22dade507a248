using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Stages;
using TwoTower.Tuning;

namespace TwoTower.Tests;

/// <summary>The tuning split and the Sweep target, on small built-in data.</summary>
public sealed class SweepTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-sweep-").FullName;

    string DataDir => Path.Combine(dir, "data");

    PipelineConfig Config(params string[] more) =>
        PipelineConfig.Parse("", "test", [$"data.dir={DataDir}", "synth.scale=0.02", "train.epochs=1", "train.batch_size=256", "threads=2",
            "sweep.space=[train.learning_rate=0.05|0.1]", "sweep.method=two_tower", .. more]);

    public SweepTests() => Synthesizer.EnsureData(Config(), new RecordingLog());

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TuningSplitValidatesOnTheLastTrainingDaysAndNeverReadsTheValidationFile()
    {
        var config = Config("data.split=tuning", "data.tuning_days=7");
        File.Delete(DataFiles.ValCsv(config));   // not an input: Ingest runs without it
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var stage = new IngestStage();
        store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);

        // Independent: the training file's dates, read as text.
        var dates = File.ReadLines(DataFiles.TrainCsv(config)).Skip(1).Select(line => DateOnly.Parse(line[..line.IndexOf(',')])).ToArray();
        var firstTuningDay = dates.Max().DayNumber - 6;
        var train = ColumnTable.ReadParquet(Path.Combine(store.StageDir("ingest"), "train.parquet")).Ints(DataFiles.DayColumn);
        var val = ColumnTable.ReadParquet(Path.Combine(store.StageDir("ingest"), "val.parquet")).Ints(DataFiles.DayColumn);
        Assert.Equal(dates.Count(d => d.DayNumber < firstTuningDay), train.Length);
        Assert.Equal(dates.Count(d => d.DayNumber >= firstTuningDay), val.Length);
        Assert.True(val.Length > 0);
        Assert.All(train, d => Assert.True(d < firstTuningDay));
        Assert.All(val, d => Assert.True(d >= firstTuningDay));

        // A customer or article first seen in the tuning days is unknown to the model, as a new one is in the validation period.
        var encode = new EncodeStage();
        store.Run(encode, config, new RecordingLog(), store.Fingerprint(encode, config), resume: false);
        var rows = File.ReadLines(DataFiles.TrainCsv(config)).Skip(1).Select(line => line.Split(',')).ToArray();
        var anyUnknown = false;
        foreach (var (column, field) in new[] { ("customer_id", 1), ("article_id", 2) })
        {
            var seenBefore = rows.Where(f => DateOnly.Parse(f[0]).DayNumber < firstTuningDay).Select(f => f[field]).ToHashSet();
            var expectedUnknown = rows.Where(f => DateOnly.Parse(f[0]).DayNumber >= firstTuningDay).Select(f => !seenBefore.Contains(f[field])).ToArray();
            var encoded = ColumnTable.ReadParquet(Path.Combine(store.StageDir("encode"), "val.parquet")).Ints(column);
            Assert.Equal(expectedUnknown, encoded.Select(id => id == Vocabulary.OutOfVocabulary));
            Assert.Equal(seenBefore.Count, Vocabulary.Read(store.StageDir("encode"), column).Count);
            anyUnknown |= expectedUnknown.Contains(true);
        }
        Assert.True(anyUnknown, "the data has articles or customers first seen in the tuning days");
    }

    /// <summary>
    /// sweep.windows 2 on H&amp;M's raw layout: each trial runs on the last 7 training days and the 7 before
    /// them, each trained on the days before its own (checked against the transactions file read as text),
    /// never on a validation day; its figure is the mean of the two runs' figures, read from their metrics.
    /// </summary>
    [Fact]
    public void EachTrialIsTheMeanOfItsTuningPeriodsEachTrainedOnTheDaysBefore()
    {
        var config = Config("data.format=hm_raw", $"data.dir={dir}/raw", "sweep.windows=2", "sweep.space=[train.learning_rate=0.05]");
        Synthesizer.EnsureData(config, new RecordingLog());
        var results = Sweep.Run(config, Path.Combine(dir, "sweep"), new RecordingLog());

        var days = File.ReadLines(Path.Combine(dir, "raw", "transactions_train.csv")).Skip(1)
            .Select(line => DateOnly.ParseExact(line[..10], "yyyy-MM-dd").DayNumber).ToArray();
        var trialDir = Path.Combine(dir, "sweep", "trials", results.Single().Trial.Id);
        var figures = new List<double>();
        foreach (var (store, w) in new[] { (trialDir, 0), (Path.Combine(trialDir, "offset-007"), 1) })
        {
            // The validation week is the last 7 days; tuning period w the 7 days ending 7·w days before it.
            var (first, last) = (days.Max() - 7 - 7 * w - 6, days.Max() - 7 - 7 * w);
            var train = ColumnTable.ReadParquet(Path.Combine(store, "ingest", "train.parquet")).Ints(DataFiles.DayColumn);
            var tuning = ColumnTable.ReadParquet(Path.Combine(store, "ingest", "val.parquet")).Ints(DataFiles.DayColumn);
            Assert.Equal(days.Count(d => d < first), train.Length);
            Assert.Equal(days.Count(d => d >= first && d <= last), tuning.Length);
            Assert.True(tuning.Length > 0);
            figures.Add(Sweep.Figure(Path.Combine(store, "evaluate", "metrics.json"), config));
        }
        Assert.Equal(figures, results.Single().WindowFigures);
        Assert.Equal(figures.Average(), results.Single().Figure);
        Assert.NotEqual(figures[0], figures[1]);
        Assert.All(Sweep.Run(config, Path.Combine(dir, "sweep"), new RecordingLog()), r => Assert.True(r.Cached));

        var error = Assert.Throws<PipelineError>(() => Sweep.Run(Config("sweep.windows=2"), Path.Combine(dir, "refused"), new RecordingLog()));
        Assert.Contains("'data.format': Sweep with sweep.windows > 1 moves the validation days back", error.Message);
        error = Assert.Throws<PipelineError>(() => Sweep.Trials(Config("data.format=hm_raw", "sweep.windows=2", "sweep.space=[raw.validation_offset_days=7|14]")));
        Assert.Contains("raw.validation_offset_days is set by Sweep itself", error.Message);
    }

    /// <summary>sweep.method cold_start reads the hit@100 of the model with history from Evaluate's cold-start section (a hand-written metrics.json).</summary>
    [Fact]
    public void ColdStartFigureIsTheModelWithHistorysHitAt100()
    {
        var path = Path.Combine(dir, "metrics.json");
        File.WriteAllText(path, """
            { "per_customer": [], "cold_start": [
                { "name": "model, their other purchases as history", "metrics": { "rows": 9, "hit_at": { "10": 0.1, "100": 0.25 } } },
                { "name": "model, no history", "metrics": { "rows": 9, "hit_at": { "10": 0.05, "100": 0.125 } } } ] }
            """);
        Assert.Equal(0.25, Sweep.Figure(path, Config("sweep.method=cold_start", "sweep.metric=row_hit_at100")));
        Assert.Contains("only row_hit_at100", Assert.Throws<PipelineError>(() => Sweep.Figure(path, Config("sweep.method=cold_start"))).Message);
        File.WriteAllText(path, """{ "per_customer": [], "cold_start": [] }""");
        Assert.Contains("needs features.query.history",
            Assert.Throws<PipelineError>(() => Sweep.Figure(path, Config("sweep.method=cold_start", "sweep.metric=row_hit_at100"))).Message);
    }

    [Fact]
    public void TrialsAreTheGridOrASeededSampleAndBadEntriesAreRefused()
    {
        var grid = Sweep.Trials(Config("sweep.space=[train.learning_rate=0.05|0.1, train.temperature=0.05|0.1|0.2]"));
        Assert.Equal(6, grid.Count);
        Assert.Equal(["train.learning_rate=0.05", "train.temperature=0.05"], grid[0].Settings);
        Assert.Equal(6, grid.Select(t => t.Id).Distinct().Count());
        var sample = Sweep.Trials(Config("sweep.space=[train.learning_rate=0.05|0.1, train.temperature=0.05|0.1|0.2]", "sweep.trials=3"));
        Assert.Equal(3, sample.Count);
        Assert.All(sample, t => Assert.Contains(grid, g => g.Id == t.Id));
        Assert.Equal(sample.Select(t => t.Id), Sweep.Trials(Config("sweep.space=[train.learning_rate=0.05|0.1, train.temperature=0.05|0.1|0.2]", "sweep.trials=3")).Select(t => t.Id));

        Assert.Contains("unknown key", Assert.Throws<PipelineError>(() => Sweep.Trials(Config("sweep.space=[train.learnin_rate=0.1]"))).Message);
        Assert.Contains("train.epochs", Assert.Throws<PipelineError>(() => Sweep.Trials(Config("sweep.space=[train.epochs=0|1]"))).Message);
        Assert.Contains("set by Sweep itself", Assert.Throws<PipelineError>(() => Sweep.Trials(Config("sweep.space=[data.split=given]"))).Message);
        Assert.Contains("expected key=value", Assert.Throws<PipelineError>(() => Sweep.Trials(Config("sweep.space=[train.learning_rate]"))).Message);
    }

    /// <summary>
    /// A sweep's figures and chosen settings do not move when a validation row changes (the trials
    /// never read it); a rerun recomputes nothing, and one interrupted after its first trial and inside
    /// its second (Evaluate's output gone) resumes with the same figures, retraining nothing.
    /// </summary>
    [Fact]
    public void SweepNeverTouchesTheValidationDataAndResumes()
    {
        var config = Config();
        var first = Sweep.Run(config, Path.Combine(dir, "sweep1"), new RecordingLog());
        Assert.Equal(2, first.Count);
        Assert.All(first, r => Assert.False(r.Cached));
        Assert.NotEqual(first[0].Figure, first[1].Figure);

        var val = DataFiles.ValCsv(config);
        var lines = File.ReadAllLines(val);
        var fields = lines[1].Split(',');
        fields[2] = lines[2].Split(',')[2];   // another article for the first validation row
        lines[1] = string.Join(',', fields);
        File.WriteAllLines(val, lines);
        var second = Sweep.Run(config, Path.Combine(dir, "sweep2"), new RecordingLog());
        Assert.Equal(first.Select(r => r.Figure), second.Select(r => r.Figure));
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "sweep1", Sweep.BestConfigFile)).Split('\n').Skip(2),
            File.ReadAllText(Path.Combine(dir, "sweep2", Sweep.BestConfigFile)).Split('\n').Skip(2));

        Assert.All(Sweep.Run(config, Path.Combine(dir, "sweep2"), new RecordingLog()), r => Assert.True(r.Cached));

        var trial2 = Path.Combine(dir, "sweep2", "trials", second[1].Trial.Id);
        var weights = Path.Combine(trial2, "train", TrainedModel.WeightsFile);
        var trainedAt = File.GetLastWriteTimeUtc(weights);
        Directory.Delete(Path.Combine(trial2, "evaluate"), recursive: true);
        File.Delete(Path.Combine(trial2, "trial.json"));
        var resumed = Sweep.Run(config, Path.Combine(dir, "sweep2"), new RecordingLog());
        Assert.True(resumed[0].Cached);
        Assert.False(resumed[1].Cached);
        Assert.Equal(first.Select(r => r.Figure), resumed.Select(r => r.Figure));
        Assert.Equal(trainedAt, File.GetLastWriteTimeUtc(weights));
    }
}
