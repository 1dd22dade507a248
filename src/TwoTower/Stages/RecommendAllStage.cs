using System.Diagnostics;
using System.Text.Json;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Pipeline;
using TwoTower.Serving;

namespace TwoTower.Stages;

/// <summary>
/// RecommendAll: the top recommend.k of every customer from the package, as the service would
/// answer each of them with exact scoring: recommendations.parquet, and for data.format hm_raw the
/// competition's submission.csv; summary.json says how many customers were covered and how many the
/// model did not know (served with the out-of-vocabulary embedding and the sources that need no history).
/// </summary>
public sealed class RecommendAllStage : Stage
{
    public override string Name => "recommend";
    public override string CodeVersion => "recommend-1";
    public override IReadOnlyList<string> ConfigKeys =>
        ["recommend", "data.format", "data.dir", "raw.customers_file", "raw.articles_file", "raw.article_id_digits", "accelerator"];
    public override IReadOnlyList<string> Upstream => ["package"];

    public override IEnumerable<string> InputFiles(PipelineConfig config) =>
        HmRaw(config) ? [CustomersFile(config) ?? DataFiles.Customers(config), DataFiles.Articles(config)]
        : CustomersFile(config) is { } file ? [file] : [];

    static bool HmRaw(PipelineConfig config) => config.Get(ConfigSchema.Data.Format) == "hm_raw";

    /// <summary>The file whose customer_id column lists the customers to cover, or null for the training customers.</summary>
    static string? CustomersFile(PipelineConfig config) => config.Get(ConfigSchema.Recommend.Customers) switch
    {
        "training" => null,
        "auto" => HmRaw(config) ? DataFiles.Customers(config) : null,
        var path => path,
    };

    public sealed record Summary(int Customers, int UnknownCustomers, string CustomersFrom, string List, int K, bool ExcludeBought, int? Month,
        long Rows, int SubmissionLinesShorterThan12, bool Submission, double Seconds);

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var watch = Stopwatch.StartNew();
        var packageDir = run.Store.StageDir("package");
        using var recommender = new Recommender(packageDir);
        var customersFile = CustomersFile(config);
        IReadOnlyList<string> customers = customersFile == null
            ? Vocabulary.Read(packageDir, recommender.CustomerIdColumn).Values
            : RawHm.ReadIds(customersFile, "customer_id").Select(c => c.Id).ToArray();
        var k = (int)config.Get(ConfigSchema.Recommend.K);
        var modelOnly = config.Get(ConfigSchema.Recommend.List) == "model";
        var excludeBought = config.Get(ConfigSchema.Recommend.ExcludeBought);
        // The week being predicted: the month after the last training day, as the blend's sources are built.
        var month = recommender.PredictionMonth;
        var values = month is { } m ? new Dictionary<string, string> { ["month"] = m.ToString() } : new Dictionary<string, string>();

        Func<string, string>? spelling = null;
        if (HmRaw(config))
        {
            var asWritten = RawHm.ReadIds(DataFiles.Articles(config), "article_id", (int)config.Get(ConfigSchema.Raw.ArticleIdDigits))
                .ToDictionary(a => a.Id, a => a.Written);
            spelling = id => asWritten.GetValueOrDefault(id, id);
            if (k < BatchRecommendations.SubmissionLength)
                run.Log.Warning($"recommend.k is {k}: submission.csv gets {k} articles per customer, not the competition's {BatchRecommendations.SubmissionLength}");
        }
        run.Log.Info($"Recommending {k} articles ({(modelOnly || !recommender.HasBlend ? "the model's" : "the blend's")} list" +
                     $"{(excludeBought ? ", bought ones left out" : "")}) to {customers.Count:N0} customers of " +
                     $"{customersFile ?? "the training data"}{(month is { } mm ? $", month {mm}" : "")}");
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, run.Log);
        var lists = BatchRecommendations.Lists(recommender, customers, new BatchRecommendations.Request(k, modelOnly, excludeBought, values), kernels, config.Threads);
        var written = BatchRecommendations.Write(run.OutputDir, lists, customers.Count, spelling, run.Log);
        if (written.UnknownCustomers > 0)
            run.Log.Info($"{written.UnknownCustomers:N0} of {written.Customers:N0} customers are unknown to the model: served as the service serves them " +
                         "(the out-of-vocabulary embedding and, in the blend, the sources that need no history)");
        if (written.ShortLists > 0)
            run.Log.Warning($"{written.ShortLists:N0} customers got fewer than {BatchRecommendations.SubmissionLength} articles (their candidate union is smaller)");
        var summary = new Summary(written.Customers, written.UnknownCustomers, customersFile ?? "training", written.Source, k, excludeBought, month,
            written.Rows, written.ShortLists, spelling != null, Math.Round(watch.Elapsed.TotalSeconds, 2));
        ArtifactStore.WriteAtomic(run.Output("summary.json"), JsonSerializer.Serialize(summary, new JsonSerializerOptions
        {
            WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        }));
        run.Log.Info($"Wrote {written.Rows:N0} rows for {written.Customers:N0} customers to {Path.Combine(run.Store.StageDir(Name), BatchRecommendations.RecommendationsFile)}" +
                     $"{(spelling != null ? " and submission.csv" : "")} in {watch.Elapsed.TotalSeconds:F1} s");
    }
}
