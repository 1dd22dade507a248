using TwoTower.Config;
using TwoTower.Serving;
using TwoTower.Stages;

namespace TwoTower.Build.Tasks;

[TaskName("Recommend")]
[TaskDescription("Prints the top k articles for --customer=<id> [--k=10 --age=.. --month=.. --exact --exclude-bought --model-only]")]
[IsDependentOn(typeof(PackageTask))]
public sealed class RecommendTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context)
    {
        var customer = context.Argument("customer") ?? throw new PipelineError("Recommend needs --customer=<customer id>");
        var k = CommandLine.PositiveInt("k", context.Argument("k"), 10);
        using var recommender = new Recommender(context.Store.StageDir("package"));
        var values = new[] { "age", "month", "history" }.Where(n => context.Argument(n) != null).ToDictionary(n => n, n => context.Argument(n)!);
        RecommendResult result;
        try
        {
            result = recommender.Recommend(customer, values, k, context.Argument("exclude-bought") == "true", context.Argument("exact") == "true",
                context.Argument("model-only") == "true");
        }
        catch (ArgumentException e)
        {
            throw new PipelineError(e.Message);
        }
        context.Info((result.KnownCustomer ? $"Top {k} for customer {customer}" : $"Top {k} for {customer} (not seen in training: out-of-vocabulary embedding)") +
                     $", from the {result.Source}:");
        var rank = 0;
        foreach (var item in result.Items)
            context.Info($"{++rank,4}  {item.ArticleId}  {item.Score,8:F4}  [{string.Join(", ", item.Sources)}]  " +
                         string.Join("  ", item.Features.Select(f => $"{f.Key}={f.Value}")));
    }
}

[TaskName("RecommendAll")]
[TaskDescription("Writes the top recommend.k of every customer to artifacts/recommend/recommendations.parquet (+ submission.csv for H&M data)")]
[IsDependentOn(typeof(PackageTask))]
public sealed class RecommendAllTask : StageTask<RecommendAllStage>;

[TaskName("Serve")]
[TaskDescription("Runs the recommend HTTP service on serve.host:serve.port until Ctrl-C")]
[IsDependentOn(typeof(PackageTask))]
public sealed class ServeTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context)
    {
        using var recommender = new Recommender(context.Store.StageDir("package"));
        var settings = ServiceSettings.From(context.Config);
        var app = RecommendService.Build(recommender, settings);
        context.Info($"Serving {recommender.ArticleIds.Length:N0} articles on http://{settings.Host}:{settings.Port}/recommend?customer_id=... " +
                     $"(at most {settings.MaxConcurrentRequests} at once, {settings.RequestTimeout.TotalMilliseconds:N0} ms each; Ctrl-C stops)");
        app.Run();
    }
}

[TaskName("PublishOpenSearch")]
[TaskDescription("Creates the OpenSearch k-NN index and bulk-loads the articles (--set opensearch.url=...)")]
[IsDependentOn(typeof(PackageTask))]
public sealed class PublishOpenSearchTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) =>
        OpenSearchExport.PublishAsync(context.Store.StageDir("package"), context.Config, context).GetAwaiter().GetResult();
}
