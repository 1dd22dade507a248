using nietras.SeparatedValues;
using TwoTower.Config;
using TwoTower.Data;

using TwoTower.Pipeline;
using TwoTower.Stages;

namespace TwoTower.Tests;

public class VocabularyAndNormalizationTests
{
    [Fact]
    public void VocabularyIsFirstSeenOrderWithZeroForUnknown()
    {
        var levels = new Levels();
        var codes = new[] { "b", "a", "b", "0042", "a" }.Select(v => levels.Code(v)).ToArray();
        Assert.Equal([0, 1, 0, 2, 1], codes);
        var vocabulary = new Vocabulary(levels.Values);
        Assert.Equal(["b", "a", "0042"], vocabulary.Values);
        Assert.Equal([1, 2, 3, 0, 1], vocabulary.Encode(["b", "a", "0042", "42", "b"]));
        Assert.Equal("0042", vocabulary.Decode(3));
    }

    [Fact]
    public void NormalizationUsesPopulationVarianceOfTrainingRows()
    {
        var stats = NormalizationStats.Fit([1f, 2, 3, 4], 1e-7);
        Assert.Equal(2.5, stats.Mean, 12);
        Assert.Equal(1.25, stats.Variance, 12);
        var normalized = stats.Apply([1f, 4, 10]);
        Assert.Equal((1 - 2.5) / Math.Sqrt(1.25), normalized[0], 6);
        Assert.Equal((4 - 2.5) / Math.Sqrt(1.25), normalized[1], 6);
        Assert.Equal((10 - 2.5) / Math.Sqrt(1.25), normalized[2], 5);
    }

    [Fact]
    public void ConstantColumnDividesByEpsilonAndMissingValuesTakeTheMean()
    {
        var stats = NormalizationStats.Fit([5f, 5, float.NaN], 1e-7);
        Assert.Equal(2, stats.Count);
        Assert.Equal(1e-7, stats.Std);
        var normalized = stats.Apply([5f, float.NaN, 5.5f]);
        Assert.Equal(0f, normalized[0]);
        Assert.Equal(0f, normalized[1]);
        Assert.Equal(5e6, normalized[2], 1e-3 * 5e6);
    }
}

public class ConfigTests
{
    static string RepoFile(string name) => Path.Combine(TestPaths.RepoRoot, name);

    [Fact]
    public void EveryStageFingerprintsKnownKeysAndIngestTheRawLayoutsKeys()
    {
        Stage[] stages = [new IngestStage(), new EncodeStage(), new NormalizeStage(), new TrainStage(), new BlendStage(), new EvaluateStage(), new PackageStage()];
        foreach (var prefix in stages.SelectMany(s => s.ConfigKeys))
            Assert.True(ConfigSchema.Find(prefix) != null || ConfigSchema.Sections.Contains(prefix), $"'{prefix}' is neither a key nor a section");
        // Ingest of the raw layout reads raw.* (split, sampling, padding): a change there must rerun it.
        var before = PipelineConfig.Parse("", "test", ["data.format=hm_raw"]).Canonical(new IngestStage().ConfigKeys);
        var after = PipelineConfig.Parse("", "test", ["data.format=hm_raw", "raw.validation_days=14"]).Canonical(new IngestStage().ConfigKeys);
        Assert.NotEqual(before, after);
    }

    [Fact]
    public void PipelineYamlListsEveryKeyWithTheSchemaDefault()
    {
        var text = File.ReadAllText(RepoFile("pipeline.yaml"));
        var config = PipelineConfig.Parse(text, "pipeline.yaml");
        var all = ConfigSchema.Keys.Select(k => k.Name).ToArray();
        Assert.Equal(PipelineConfig.Defaults().Canonical(all), config.Canonical(all));
        foreach (var key in ConfigSchema.Keys)
            Assert.StartsWith("pipeline.yaml:", config.Origin(key));
    }

    [Fact]
    public void SeedConfigUndoesBothDepartures()
    {
        var config = PipelineConfig.Load(RepoFile("data/seed.pipeline.yaml"));
        Assert.False(config.Get(ConfigSchema.Train.LogqCorrection));
        Assert.Equal("notebook", config.Get(ConfigSchema.Model.OneHotDepth));
        Assert.Equal("tfa", config.Get(ConfigSchema.Train.WeightDecayConvention));
        Assert.Equal("batches", config.Get(ConfigSchema.Train.Shuffle));
        Assert.Equal(2048, config.Get(ConfigSchema.Train.BatchSize));
        Assert.Equal(0, config.Get(ConfigSchema.FeaturesHistory.Length));   // the notebook's tower sees no purchase history
        Assert.Equal(0.0, config.Get(ConfigSchema.Train.QueryIdDropout));
    }

    [Fact]
    public void EveryConfigUnderDataLoads()
    {
        var files = Directory.GetFiles(RepoFile("data"), "*.pipeline.yaml");
        Assert.Contains(files, f => f.EndsWith("history.pipeline.yaml"));
        foreach (var file in files)
            PipelineConfig.Load(file);
    }

    [Theory]
    [InlineData("train:\n  epoch: 3\n", "test.yaml:2:3: unknown key 'train.epoch'. Did you mean 'train.epochs'?")]
    [InlineData("train:\n  epochs: three\n", "test.yaml:2:11: 'train.epochs' must be an integer")]
    [InlineData("train:\n  batch_size: 1\n", "test.yaml:2:15: 'train.batch_size' must be an integer in [2,")]
    [InlineData("train:\n  learning_rate: 0\n", "'train.learning_rate' must be a number > 0")]
    [InlineData("model:\n  embedding_dim: 0\n", "'model.embedding_dim' must be an integer in [1, 4096]")]
    [InlineData("train:\n  shuffle: sometimes\n", "'train.shuffle' must be one of: batches, rows")]
    [InlineData("model:\n  query_layers: 16\n", "'model.query_layers' must be a list of integers")]
    [InlineData("train: [1, 2\n", "test.yaml:")]
    public void BadConfigNamesTheKeyAndLine(string yaml, string expected)
    {
        var error = Assert.Throws<PipelineError>(() => PipelineConfig.Parse(yaml, "test.yaml"));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void SetOverridesTheFileAndIsNamedInErrors()
    {
        var config = PipelineConfig.Parse("train:\n  epochs: 5\n", "test.yaml", ["train.epochs=3", "model.query_layers=32,16"]);
        Assert.Equal(3, config.Get(ConfigSchema.Train.Epochs));
        Assert.Equal([32L, 16], config.Get(ConfigSchema.Model.QueryLayers));
        var error = Assert.Throws<PipelineError>(() => PipelineConfig.Parse("", "test.yaml", ["train.batch_size=-4"]));
        Assert.Contains("--set train.batch_size", error.Message);
        Assert.Throws<PipelineError>(() => PipelineConfig.Parse("", "test.yaml", ["no.such.key=1"]));
    }

    [Fact]
    public void TowersMustEndInTheSameWidth()
    {
        var error = Assert.Throws<PipelineError>(() => PipelineConfig.Parse("", "t", ["model.query_layers=[16, 8]"]));
        Assert.Contains("same size", error.Message);
    }
}

public class CsvInputTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-csv-").FullName;
    static readonly string[] Categorical = ["customer_id", "article_id", "garment_group_name"];
    static readonly string[] Numeric = ["age", "month_sin"];

    public void Dispose() => Directory.Delete(dir, true);

    string Write(string text, string name = "train_df.csv")
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    static CsvTransactions.Result Read(string path, bool missingIsError = false) =>
        CsvTransactions.Read(path, Categorical, Numeric, missingIsError);

    [Fact]
    public void ParsesQuotedCommasBomCrlfAndKeepsLeadingZeros()
    {
        var path = Write("\uFEFFcustomer_id,article_id,age,month_sin,garment_group_name,extra\r\n" +
                         "00abc,0108775015,23,0.5,\"Under-, Nightwear\",x\r\n" +
                         "00abd,0108775016,41,-1,Shoes,y\r\n");
        var result = Read(path);
        var table = result.Table;
        Assert.Equal(2, table.RowCount);
        string[] Values(string column) => table.Ints(column).Select(c => result.Levels[column][c]).ToArray();
        Assert.Equal(["00abc", "00abd"], Values("customer_id"));
        Assert.Equal("0108775015", Values("article_id")[0]);
        Assert.Equal("Under-, Nightwear", Values("garment_group_name")[0]);
        Assert.Equal([23f, 41f], table.Floats("age"));
    }

    /// <summary>What the project writes, Sep reads back as written: commas, quotes and line breaks in a field.</summary>
    [Fact]
    public void WrittenFieldsReadBackUnchanged()
    {
        string[] values = ["plain", "a,b", "say \"hi\"", "\"", "two\nlines", "cr\r\nlf", "", " spaced "];
        var path = Write("value,n\n" + string.Concat(values.Select((v, i) => $"{CsvFile.Field(v)},{i}\n")));
        var read = CsvFile.Read(path, reader => reader.Enumerate(row => (row["value"].ToString(), row["n"].Parse<int>())).ToArray());
        Assert.Equal(values.Select((v, i) => (v, i)), read);
        Assert.Equal("plain", CsvFile.Field("plain"));   // quoted only where needed: ids stay as the data spells them
    }

    [Fact]
    public void MissingFileIsNamed() =>
        Assert.Contains("not found", Assert.Throws<PipelineError>(() => Read(Path.Combine(dir, "nope.csv"))).Message);

    [Fact]
    public void EmptyFileIsAnError() =>
        Assert.Contains("empty", Assert.Throws<PipelineError>(() => Read(Write(""))).Message);

    [Fact]
    public void HeaderOnlyIsAnError() =>
        Assert.Contains("no data rows",
            Assert.Throws<PipelineError>(() => Read(Write("customer_id,article_id,age,month_sin,garment_group_name\n"))).Message);

    [Fact]
    public void MissingColumnListsTheColumnsFound()
    {
        var message = Assert.Throws<PipelineError>(() => Read(Write("customer_id,article_id,age,garment_group_name\na,b,1,c\n"))).Message;
        Assert.Contains("missing column 'month_sin'", message);
        Assert.Contains("Columns found: customer_id, article_id, age, garment_group_name", message);
    }

    [Fact]
    public void UnparsableNumberNamesFileLineColumnAndValue()
    {
        var path = Write("customer_id,article_id,age,month_sin,garment_group_name\na,b,1,0,c\na,b,twenty,0,c\n");
        var message = Assert.Throws<PipelineError>(() => Read(path)).Message;
        Assert.Contains($"{path}:3: column 'age' (column 3): 'twenty' is not a number", message);
    }

    [Fact]
    public void MissingAgeIsImputedOrAnErrorByPolicy()
    {
        var path = Write("customer_id,article_id,age,month_sin,garment_group_name\na,b,,0,c\na,b,30,0,c\n");
        var result = Read(path);
        Assert.True(float.IsNaN(result.Table.Floats("age")[0]));
        Assert.Equal(1, result.MissingCounts["age"]);
        var message = Assert.Throws<PipelineError>(() => Read(path, missingIsError: true)).Message;
        Assert.Contains($"{path}:2: column 'age' (column 3) is empty", message);
    }
}
