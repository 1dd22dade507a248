using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Tests;

/// <summary>The hm_raw feature pipeline on small hand-written files in H&amp;M's raw layout.</summary>
public class RawDataTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-raw-").FullName;

    public void Dispose() => Directory.Delete(dir, true);


    void WriteFiles()
    {
        File.WriteAllText(Path.Combine(dir, "transactions_train.csv"),
            "t_dat,customer_id,article_id,price,sales_channel_id\n" +
            "2020-01-05,c1,108775015,0.01,2\n" +   // article id without its leading zero, as in H&M's CSV
            "2020-03-10,c2,108775044,0.02,1\n" +
            "2020-03-11,c1,108775044,0.03,2\n" +
            "2020-03-11,c1,108775044,0.03,2\n" +   // repeated pair
            "2020-03-12,cX,108775015,0.04,2\n" +   // customer absent from customers.csv
            "2020-03-12,c2,999,0.05,2\n");         // article absent from articles.csv
        File.WriteAllText(Path.Combine(dir, "customers.csv"),
            "customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n" +
            "c1,,,ACTIVE,NONE,24,p1\n" +
            "c2,1.0,1.0,ACTIVE,Regularly,,p2\n");  // empty age
        File.WriteAllText(Path.Combine(dir, "articles.csv"),
            "article_id,product_code,prod_name,garment_group_name,index_group_name\n" +
            "0108775015,0108775,\"Strap top, 2-pack\",Jersey Basic,Ladieswear\n" +
            "0108775044,0108775,Strap top,\"Under-, Nightwear\",Divided\n");
    }

    PipelineConfig Config(params string[] overrides) => PipelineConfig.Parse("", "test",
    [
        "data.format=hm_raw", $"data.dir={dir}", "features.candidate.one_hot=[garment_group_name, prod_name]",
        .. overrides,
    ]);

    static string[] Values(RawHm.Split split, string column) =>
        split.Table.Ints(column).Select(c => split.Levels[column][c]).ToArray();

    [Fact]
    public void JoinsCustomersAndArticlesPadsIdsAndEncodesTheMonth()
    {
        WriteFiles();
        var log = new RecordingLog();
        var (train, val) = RawHm.Read(Config("raw.validation_days=2"), FeatureSet.From(Config()), log);
        // Last 2 days (2020-03-11..12) are validation.
        Assert.Equal(["c1", "c2"], Values(train, "customer_id"));
        Assert.Equal(["0108775015", "0108775044"], Values(train, "article_id"));
        Assert.Equal(["Jersey Basic", "Under-, Nightwear"], Values(train, "garment_group_name"));
        Assert.Equal(["Strap top, 2-pack", "Strap top"], Values(train, "prod_name"));
        Assert.Equal(24f, train.Table.Floats("age")[0]);
        Assert.True(float.IsNaN(train.Table.Floats("age")[1]));
        Assert.Equal((float)Math.Sin(2 * Math.PI * 1 / 12), train.Table.Floats("month_sin")[0]);
        Assert.Equal((float)Math.Cos(2 * Math.PI * 3 / 12), train.Table.Floats("month_cos")[1]);
        // Validation keeps the missing customer and article (policy keep) with empty features.
        Assert.Equal(["c1", "c1", "cX", "c2"], Values(val, "customer_id"));
        Assert.Equal(["Under-, Nightwear", "Jersey Basic", ""], val.Levels["garment_group_name"]);
        Assert.Contains(log.Lines, l => l.Contains("1 transactions name a customer absent"));
        Assert.Contains(log.Lines, l => l.Contains("1 transactions name an article absent"));
        Assert.Contains(log.Lines, l => l.Contains("numeric feature values are missing"));
    }

    [Fact]
    public void AValidationOffsetBacktestsAnEarlierDayAndHoldsOutTheDaysAfterIt()
    {
        WriteFiles();
        var features = FeatureSet.From(Config());
        // Days: 01-05 (c1), 03-10 (c2), 03-11 (c1 twice), 03-12 (cX, c2). One validation day ending 1 day before the last: 03-11.
        var (train, val) = RawHm.Read(Config("raw.validation_days=1", "raw.validation_offset_days=1"), features, new RecordingLog());
        Assert.Equal(["c1", "c2"], Values(train, "customer_id"));
        Assert.Equal(["c1", "c1"], Values(val, "customer_id"));
        // Ending 2 days before: validation is 03-10 alone; 03-11 and 03-12 are in neither part.
        (train, val) = RawHm.Read(Config("raw.validation_days=1", "raw.validation_offset_days=2"), features, new RecordingLog());
        Assert.Equal(["c1"], Values(train, "customer_id"));
        Assert.Equal(["c2"], Values(val, "customer_id"));
        Assert.Equal(["0108775044"], Values(val, "article_id"));
        // Before the first day nothing is left to train on.
        var error = Assert.Throws<PipelineError>(() => RawHm.Read(Config("raw.validation_offset_days=80"), features, new RecordingLog()));
        Assert.Contains("raw.validation_offset_days", error.Message);
    }

    [Fact]
    public void MissingPoliciesDropAndPaddingCanBeTurnedOff()
    {
        WriteFiles();
        var (train, val) = RawHm.Read(Config("raw.validation_days=2", "raw.missing_customer=drop", "raw.missing_article=drop"),
            FeatureSet.From(Config()), new RecordingLog());
        // Dropping the last day's two rows moves the last day, and so the 2-day window, back to 2020-03-10.
        Assert.Equal(["c2", "c1", "c1"], Values(val, "customer_id"));
        Assert.Equal(1, train.Table.RowCount);

        // Without padding no transaction's article is found: all dropped.
        var error = Assert.Throws<PipelineError>(() => RawHm.Read(Config("raw.article_id_digits=0", "raw.missing_article=drop"),
            FeatureSet.From(Config()), new RecordingLog()));
        Assert.Contains("no transactions left", error.Message);
    }

    [Fact]
    public void MissingAgeIsAnErrorUnderThatPolicy()
    {
        WriteFiles();
        var error = Assert.Throws<PipelineError>(() => RawHm.Read(Config("data.missing_numeric=error"), FeatureSet.From(Config()), new RecordingLog()));
        Assert.Contains("transactions_train.csv:3: no value for numeric feature 'age'", error.Message);
    }

    [Fact]
    public void DeduplicationKeepsTheFirstRowOfEachPair()
    {
        WriteFiles();
        var (_, val) = RawHm.Read(Config("raw.validation_days=2", "raw.dedupe_pairs=true"), FeatureSet.From(Config()), new RecordingLog());
        Assert.Equal(["c1", "cX", "c2"], Values(val, "customer_id"));
    }

    [Fact]
    public void RandomSplitIsSeededAndSamplingKeepsOnlySampledCustomers()
    {
        WriteFiles();
        var features = FeatureSet.From(Config());
        int[] Parts(int seed)
        {
            var (train, val) = RawHm.Read(Config("raw.split=random", "raw.validation_fraction=0.4", "raw.test_fraction=0.1",
                $"raw.split_seed={seed}"), features, new RecordingLog());
            return [train.Table.RowCount, val.Table.RowCount];
        }
        Assert.Equal(Parts(1), Parts(1));
        Assert.True(Enumerable.Range(0, 20).Select(Parts).Select(p => p[0]).Distinct().Count() > 1, "different seeds give different splits");

        var (sampledTrain, sampledVal) = RawHm.Read(Config("raw.sample_customers=1", "raw.sample_seed=3", "raw.validation_days=2"),
            features, new RecordingLog());
        var kept = Values(sampledTrain, "customer_id").Concat(Values(sampledVal, "customer_id")).Distinct().ToArray();
        Assert.Single(kept);
    }

    [Fact]
    public void UnknownFeatureColumnListsWhatTheFilesHave()
    {
        WriteFiles();
        var error = Assert.Throws<PipelineError>(() => RawHm.Read(Config(), FeatureSet.From(Config("features.query.one_hot=[shoe_size]")),
            new RecordingLog()));
        Assert.Contains("'shoe_size' is in none of the raw files", error.Message);
        Assert.Contains("club_member_status", error.Message);
    }

    [Fact]
    public void SyntheticRawLayoutRunsThroughIngest()
    {
        var config = PipelineConfig.Parse("", "test", ["data.format=hm_raw", $"data.dir={dir}/synth", "synth.scale=0.01"]);
        Synthesizer.EnsureData(config, new RecordingLog());
        var (train, val) = RawHm.Read(config, FeatureSet.From(config), new RecordingLog());
        Assert.True(train.Table.RowCount > 3000);
        Assert.True(val.Table.RowCount > 0);
        Assert.All(Values(train, "article_id").Take(100), id => Assert.Equal(10, id.Length));
        Assert.True(train.Levels["garment_group_name"].Count > 1);
    }
}
