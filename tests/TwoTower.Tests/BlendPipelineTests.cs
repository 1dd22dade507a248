using System.Security.Cryptography;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;
using TwoTower.Stages;

namespace TwoTower.Tests;

/// <summary>The Blend stage learns from the training period alone, and learns the same thing twice.</summary>
public class BlendPipelineTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-blend-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    static readonly string[] Settings = ["synth.scale=0.02", "train.epochs=1", "train.batch_size=256", "threads=2", "blend.trees=20"];

    ArtifactStore RunToBlend(string dataDir, string name, params string[] extra)
    {
        var config = PipelineConfig.Parse("", "test", [$"data.dir={dataDir}", .. Settings, .. extra]);
        var store = new ArtifactStore(Path.Combine(dir, name));
        foreach (Stage stage in new Stage[] { new IngestStage(), new EncodeStage(), new NormalizeStage(), new TrainStage(), new BlendStage() })
            store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);
        return store;
    }

    static string Sha(ArtifactStore store, string stage, string file) =>
        Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(store.StageDir(stage), file))));

    /// <summary>
    /// The same training data with a different validation period (its first row's article and
    /// customer changed): the model and the ranker are byte for byte the same, and so is the
    /// ranker of a second run on unchanged data (same data, seed and threads).
    /// </summary>
    [Fact]
    public void ChangingTheValidationPeriodChangesNoTrainedArtifactAndRunsRepeatExactly()
    {
        var original = Path.Combine(dir, "data");
        Synthesizer.EnsureData(PipelineConfig.Parse("", "test", [$"data.dir={original}", .. Settings]), new RecordingLog());
        var changed = Directory.CreateDirectory(Path.Combine(dir, "changed")).FullName;
        File.Copy(Path.Combine(original, "train_df.csv"), Path.Combine(changed, "train_df.csv"));
        var lines = File.ReadAllLines(Path.Combine(original, "val_df.csv"));
        var fields = lines[1].Split(',');
        (fields[1], fields[2]) = ("a-customer-never-seen", "0999999999");
        lines[1] = string.Join(',', fields);
        File.WriteAllLines(Path.Combine(changed, "val_df.csv"), lines);

        var first = RunToBlend(original, "first");
        var again = RunToBlend(original, "again");
        var other = RunToBlend(changed, "other", "data.synthesize=never");

        Assert.NotEqual(Sha(first, "normalize", "val.parquet"), Sha(other, "normalize", "val.parquet"));
        foreach (var store in new[] { again, other })
        {
            Assert.Equal(Sha(first, "train", TrainedModel.WeightsFile), Sha(store, "train", TrainedModel.WeightsFile));
            Assert.Equal(Sha(first, "blend", BlendArtifacts.RankerFile), Sha(store, "blend", BlendArtifacts.RankerFile));
        }
    }

    /// <summary>
    /// blend.label_windows: 2 learns from the last label week as one window does, and from the week
    /// before it with the sources as of that week's first day: its label customers are the last week's
    /// plus the distinct buyers of the week before, counted here from the CSV itself.
    /// </summary>
    [Fact]
    public void TwoLabelWindowsAddTheWeekBeforeTheLastOne()
    {
        var data = Path.Combine(dir, "data");
        Synthesizer.EnsureData(PipelineConfig.Parse("", "test", [$"data.dir={data}", .. Settings]), new RecordingLog());
        var one = Summary(RunToBlend(data, "one"));
        var two = Summary(RunToBlend(data, "two", "blend.label_windows=2"));

        var rows = File.ReadLines(Path.Combine(data, "train_df.csv")).Skip(1).Select(line => line.Split(','))
            .Select(f => (Day: DateOnly.Parse(f[0]).DayNumber, Customer: f[1])).ToList();
        var lastDay = rows.Max(r => r.Day);
        var weekBefore = rows.Where(r => r.Day >= lastDay - 13 && r.Day <= lastDay - 7).Select(r => r.Customer).Distinct().Count();

        Assert.Equal(DateOnly.FromDayNumber(lastDay - 6).ToString("yyyy-MM-dd"), one.GetProperty("first_label_day").GetString());
        Assert.Equal(DateOnly.FromDayNumber(lastDay - 13).ToString("yyyy-MM-dd"), two.GetProperty("first_label_day").GetString());
        Assert.Equal(one.GetProperty("last_label_day").GetString(), two.GetProperty("last_label_day").GetString());
        Assert.Equal(one.GetProperty("label_customers").GetInt32() + weekBefore, two.GetProperty("label_customers").GetInt32());
        Assert.True(two.GetProperty("rows").GetInt32() > one.GetProperty("rows").GetInt32());
        Assert.True(two.GetProperty("positives").GetInt32() > one.GetProperty("positives").GetInt32());
    }

    /// <summary>
    /// blend.holdout_folds: 2 with holdout_customers 0.5 holds every learning customer out once, and its
    /// curve is not the first half's alone: a second fold that repeated the first, or was left out, would
    /// give the one-fold curve of that half.
    /// </summary>
    [Fact]
    public void TwoFoldsHoldOutEveryLearningCustomerOnce()
    {
        var data = Path.Combine(dir, "data");
        Synthesizer.EnsureData(PipelineConfig.Parse("", "test", [$"data.dir={data}", .. Settings]), new RecordingLog());
        var half = Summary(RunToBlend(data, "half", "blend.holdout_customers=0.5"));
        var both = Summary(RunToBlend(data, "both", "blend.holdout_customers=0.5", "blend.holdout_folds=2"));

        // The customers with rows: those with a label purchase among their candidates.
        var learners = half.GetProperty("training_customers").GetInt32() - half.GetProperty("customers_without_positive").GetInt32();
        Assert.Equal((int)Math.Round(learners * 0.5), half.GetProperty("holdout_customers").GetInt32());
        Assert.Equal(2 * (int)Math.Round(learners * 0.5), both.GetProperty("holdout_customers").GetInt32());
        static double[] Curve(System.Text.Json.JsonElement summary) =>
            [.. summary.GetProperty("holdout_map12").EnumerateArray().Select(p => p.GetProperty("map12").GetDouble())];
        Assert.Equal(Curve(half).Length, Curve(both).Length);
        Assert.NotEqual(Curve(half), Curve(both));
    }

    static System.Text.Json.JsonElement Summary(ArtifactStore store) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(store.StageDir("blend"), BlendArtifacts.SummaryFile))).RootElement;
}
