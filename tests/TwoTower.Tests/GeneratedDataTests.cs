using System.Security.Cryptography;
using TwoTower.Config;
using TwoTower.Data;

namespace TwoTower.Tests;

/// <summary>The built-in data generator writes only where it owns the files, and never leaves a mix of two generations.</summary>
public class GeneratedDataTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-synth-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    PipelineConfig Config(string dataDir, params string[] overrides) =>
        PipelineConfig.Parse("", "test", [$"data.dir={dataDir}", "synth.scale=0.01", .. overrides]);

    static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    string UserFile(string dataDir, string name, string text)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void AUsersTrainingFileWithoutItsValidationFileIsAnErrorAndIsLeftAsItWas()
    {
        var data = Path.Combine(dir, "mine");
        var mine = UserFile(data, "train_df.csv", "t_dat,customer_id,article_id\n2020-01-01,c1,a1\n");
        var before = Sha256(mine);

        var error = Assert.Throws<PipelineError>(() => Synthesizer.EnsureData(Config(data), new RecordingLog()));

        Assert.Contains("val_df.csv", error.Message);
        Assert.Contains("train_df.csv", error.Message);
        Assert.Equal(before, Sha256(mine));
        Assert.False(File.Exists(Path.Combine(data, "val_df.csv")));
    }

    [Fact]
    public void ATuningSplitOnAnEmptyFolderGeneratesBothFilesAndTheValidationRunReusesThem()
    {
        // Any target run with --set data.split=tuning on a fresh checkout (the split Sweep's trials use).
        var data = Path.Combine(dir, "data");

        Assert.True(Synthesizer.EnsureData(Config(data, "data.split=tuning"), new RecordingLog()));

        Assert.True(File.Exists(Path.Combine(data, "train_df.csv")));
        Assert.True(File.Exists(Path.Combine(data, "val_df.csv")));
        Assert.False(Synthesizer.EnsureData(Config(data), new RecordingLog()));
    }

    [Fact]
    public void ATuningSplitUsesAUsersTrainingFileAloneAsItIs()
    {
        var data = Path.Combine(dir, "mine");
        var mine = UserFile(data, "train_df.csv", "a\n1\n");

        Assert.False(Synthesizer.EnsureData(Config(data, "data.split=tuning"), new RecordingLog()));
        Assert.Equal("a\n1\n", File.ReadAllText(mine));
        Assert.False(File.Exists(Path.Combine(data, "val_df.csv")));
    }

    [Fact]
    public void AUsersCompleteDataIsUsedAsItIs()
    {
        var data = Path.Combine(dir, "mine");
        var train = UserFile(data, "train_df.csv", "a\n1\n");
        var val = UserFile(data, "val_df.csv", "a\n2\n");

        Assert.False(Synthesizer.EnsureData(Config(data), new RecordingLog()));
        Assert.Equal("a\n1\n", File.ReadAllText(train));
        Assert.Equal("a\n2\n", File.ReadAllText(val));
    }

    [Fact]
    public void AnInterruptedRegenerationIsRedoneAsAWholeNotMixedWithTheOldFiles()
    {
        var data = Path.Combine(dir, "data");
        Synthesizer.EnsureData(Config(data), new RecordingLog());
        // Interrupt a regeneration with other settings while it writes the validation file:
        // its temporary name is taken by a folder, so the write fails after train_df.csv is replaced.
        var blocker = Directory.CreateDirectory(Path.Combine(data, "val_df.csv.tmp"));
        Assert.ThrowsAny<Exception>(() => Synthesizer.EnsureData(Config(data, "synth.seed=5"), new RecordingLog()));
        blocker.Delete();

        Assert.True(Synthesizer.EnsureData(Config(data, "synth.seed=5"), new RecordingLog()));

        var clean = Path.Combine(dir, "clean");
        Synthesizer.EnsureData(Config(clean, "synth.seed=5"), new RecordingLog());
        foreach (var name in new[] { "train_df.csv", "val_df.csv" })
            Assert.Equal(Sha256(Path.Combine(clean, name)), Sha256(Path.Combine(data, name)));
        Assert.False(Synthesizer.EnsureData(Config(data, "synth.seed=5"), new RecordingLog()));
    }

    [Fact]
    public void AGeneratedFileReplacedByTheUserIsNotRegeneratedOver()
    {
        var data = Path.Combine(dir, "data");
        Synthesizer.EnsureData(Config(data), new RecordingLog());
        var mine = UserFile(data, "train_df.csv", "my own data\n");

        var error = Assert.Throws<PipelineError>(() => Synthesizer.EnsureData(Config(data, "synth.seed=5"), new RecordingLog()));

        Assert.Contains("train_df.csv", error.Message);
        Assert.Contains(GeneratedDataManifest.FileName, error.Message);
        Assert.Equal("my own data\n", File.ReadAllText(mine));
    }

    [Fact]
    public void ADataFolderThatIsAFileOrADataFileThatIsAFolderIsNamed()
    {
        var file = UserFile(dir, "not-a-folder", "x");
        Assert.Contains("is a file", Assert.Throws<PipelineError>(() => Synthesizer.EnsureData(Config(file), new RecordingLog())).Message);

        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(Path.Combine(data, "train_df.csv"));
        var error = Assert.Throws<PipelineError>(() => Synthesizer.EnsureData(Config(data), new RecordingLog()));
        Assert.Contains("train_df.csv' is a folder", error.Message);
    }

    [Fact]
    public void NeverRefusesAnUnfinishedGeneration()
    {
        var data = Path.Combine(dir, "data");
        Synthesizer.EnsureData(Config(data), new RecordingLog());
        var error = Assert.Throws<PipelineError>(() =>
            Synthesizer.EnsureData(Config(data, "synth.seed=5", "data.synthesize=never"), new RecordingLog()));
        Assert.Contains("data.synthesize is 'never'", error.Message);
    }
}
