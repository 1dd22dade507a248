using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Text.Json.Nodes;
using TwoTower.Config;
using TwoTower.Pipeline;

namespace TwoTower.Serving;

/// <summary>How the service answers: where it binds, the largest k, and its limits under load.</summary>
public sealed record ServiceSettings(string Host, int Port, int MaxK, int MaxConcurrentRequests, TimeSpan RequestTimeout)
{
    public static ServiceSettings From(PipelineConfig config) => new(
        config.Get(ConfigSchema.Serve.Host), (int)config.Get(ConfigSchema.Serve.Port), (int)config.Get(ConfigSchema.Serve.MaxK),
        (int)config.Get(ConfigSchema.Serve.MaxConcurrentRequests), TimeSpan.FromMilliseconds(config.Get(ConfigSchema.Serve.RequestTimeoutMs)));
}

/// <summary>
/// The recommend service (ASP.NET Core minimal API): GET /recommend?customer_id=…&amp;age=…&amp;month=…&amp;k=…
/// (optional exclude_bought=true, exact=true, model_only=true) → JSON: the blended list by default,
/// the model's alone with model_only; GET /health. For the page at GET / (plain HTML/CSS/JS under
/// /page/, which calls only this API), read-only JSON: /history?customer_id=… (404 for an unknown
/// customer), /customers?prefix=…&amp;limit=… (known ids, suggestions), /model-card, and the
/// evaluation plots at /plots/&lt;name&gt;.png. Bad parameters get a 400 with a
/// message; an unknown customer gets the out-of-vocabulary embedding and the response says so;
/// k is capped at serve.max_k. Under load, ASP.NET Core's own middleware keeps it answering: at most
/// serve.max_concurrent_requests recommendations are computed at once (one more gets a 503 at
/// once, not a queue), and a request not answered within serve.request_timeout_ms gets a 503.
/// </summary>
public static class RecommendService
{
    const string LimitPolicy = "recommend";

    public static WebApplication Build(Recommender recommender, ServiceSettings settings)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{settings.Host}:{settings.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.RequestHeadersTimeout = settings.RequestTimeout);
        builder.Logging.ClearProviders();
        builder.Services.AddRequestTimeouts(o => o.DefaultPolicy = new RequestTimeoutPolicy
        {
            Timeout = settings.RequestTimeout,
            TimeoutStatusCode = StatusCodes.Status503ServiceUnavailable,
        });
        builder.Services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status503ServiceUnavailable;
            o.AddConcurrencyLimiter(LimitPolicy, c => (c.PermitLimit, c.QueueLimit) = (settings.MaxConcurrentRequests, 0));
        });
        var app = builder.Build();
        app.UseRequestTimeouts();
        app.UseRateLimiter();
        app.MapGet("/health", () => Results.Ok(new { status = "ok", articles = recommender.ArticleIds.Length }));
        app.MapGet("/recommend", (HttpRequest request) => Recommend(recommender, settings.MaxK, request)).RequireRateLimiting(LimitPolicy);
        app.MapGet("/history", (HttpRequest request) => History(recommender, settings.MaxK, request)).RequireRateLimiting(LimitPolicy);
        app.MapGet("/customers", (HttpRequest request) => Customers(recommender, request)).RequireRateLimiting(LimitPolicy);
        var card = ModelCard(recommender);
        app.MapGet("/model-card", () => Results.Ok(card));
        app.MapGet("/plots/{name}", (string name) => recommender.PlotNames.Contains(name)
            ? Results.File(Path.Combine(recommender.PackageDir, PackageLayout.PlotsFolder, name), "image/png")
            : Results.NotFound(new { error = $"no plot named '{PipelineError.Excerpt(name)}'; the package has: {string.Join(", ", recommender.PlotNames)}" }));
        app.MapGet("/", () => PageFile("index.html", "text/html; charset=utf-8"));
        app.MapGet("/page/page.css", () => PageFile("page.css", "text/css; charset=utf-8"));
        app.MapGet("/page/page.js", () => PageFile("page.js", "text/javascript; charset=utf-8"));
        return app;
    }

    /// <summary>One of the page's files, embedded in this assembly (src/TwoTower/Serving/Page).</summary>
    static IResult PageFile(string name, string contentType)
    {
        using var stream = typeof(RecommendService).Assembly.GetManifestResourceStream("page/" + name)
                           ?? throw new InvalidOperationException($"the page file {name} is not embedded in the assembly");
        using var reader = new StreamReader(stream);
        return Results.Text(reader.ReadToEnd(), contentType);
    }

    /// <summary>An integer query parameter in [1, max], `fallback` when absent; null and an error message when malformed.</summary>
    static (int? Value, string? Error) Limit(HttpRequest request, string name, int fallback, int max)
    {
        if (!request.Query.TryGetValue(name, out var text))
            return (fallback, null);
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 1
            ? (Math.Min(value, max), null)
            : (null, $"{name} must be a positive integer; got '{PipelineError.Excerpt(text.ToString())}'");
    }

    static IResult History(Recommender recommender, int maxK, HttpRequest request)
    {
        var customer = request.Query["customer_id"].ToString();
        if (customer.Length == 0)
            return Results.BadRequest(new { error = "customer_id is required" });
        var (limit, error) = Limit(request, "limit", 100, maxK);
        if (error != null)
            return Results.BadRequest(new { error });
        var history = recommender.History(customer, limit!.Value);
        if (history == null)
            return Results.NotFound(new { error = $"customer '{PipelineError.Excerpt(customer)}' was not seen in training: no purchase history" });
        return Results.Ok(new
        {
            customer_id = customer,
            total = history.Total,
            purchases = history.Latest.Select(p => new { date = p.Date, article_id = p.ArticleId, features = p.Features }),
            articles_bought = history.ArticlesBought,
        });
    }

    static IResult Customers(Recommender recommender, HttpRequest request)
    {
        var (limit, error) = Limit(request, "limit", 10, 100);
        return error != null
            ? Results.BadRequest(new { error })
            : Results.Ok(new { customer_ids = recommender.CustomerIdsStartingWith(request.Query["prefix"].ToString(), limit!.Value) });
    }

    /// <summary>
    /// What the page's model card shows, read once from the package: the data, the training period,
    /// the fingerprints, the index's recall, the per-customer validation metrics (every source, the
    /// blend and the baselines) and the plots.
    /// </summary>
    static object ModelCard(Recommender recommender)
    {
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(recommender.PackageDir, PackageLayout.ManifestFile)))!;
        var stage = JsonNode.Parse(File.ReadAllText(Path.Combine(recommender.PackageDir, ArtifactStore.ManifestName)))!;
        var config = PipelineConfig.Parse(manifest["config"]!.GetValue<string>(), "package.json");
        var period = recommender.TrainingPeriod;
        return new
        {
            data = $"{config.Get(ConfigSchema.Data.Format)} from {config.Get(ConfigSchema.Data.Dir)}",
            training_period = period is { } p ? $"{p.First:yyyy-MM-dd} to {p.Last:yyyy-MM-dd}" : null,
            customers = recommender.CustomerCount,
            articles = recommender.ArticleIds.Length,
            model_fingerprint = manifest["model_fingerprint"]?.GetValue<string>(),
            config_fingerprint = stage["fingerprint"]?.GetValue<string>(),
            format_version = manifest["format_version"]?.GetValue<string>(),
            index_recall_at_100 = manifest["index"]?["recall_at_100"]?.GetValue<double>(),
            history_length = config.Get(ConfigSchema.FeaturesHistory.Length),
            repeat_bias = recommender.RepeatBias,
            per_customer = manifest["validation_metrics"]?["per_customer"] ?? new JsonArray(),
            per_row = manifest["validation_metrics"]?["methods"] ?? new JsonArray(),
            union = manifest["validation_metrics"]?["union"],
            plots = recommender.PlotNames.Select(name => new { name, url = "/plots/" + Uri.EscapeDataString(name) }),
            config = manifest["config"]!.GetValue<string>(),
        };
    }

    static IResult Recommend(Recommender recommender, int maxK, HttpRequest request)
    {
        var query = request.Query;
        var customer = query["customer_id"].ToString();
        if (customer.Length == 0)
            return Results.BadRequest(new { error = "customer_id is required" });
        var k = 10;
        if (query.TryGetValue("k", out var kText) && (!int.TryParse(kText, NumberStyles.Integer, CultureInfo.InvariantCulture, out k) || k < 1))
            return Results.BadRequest(new { error = $"k must be a positive integer; got '{PipelineError.Excerpt(kText.ToString())}'" });
        var capped = k > maxK;
        k = Math.Min(k, maxK);
        bool Flag(string name) => query[name].ToString() is "true" or "1";
        var values = query.Where(p => p.Key is not ("customer_id" or "k" or "exclude_bought" or "exact" or "model_only"))
            .ToDictionary(p => p.Key, p => p.Value.ToString());
        // Timed out while waiting for a core: answer 503 (the timeout middleware's code) rather than compute for nobody.
        if (request.HttpContext.RequestAborted.IsCancellationRequested)
            return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
        try
        {
            var result = recommender.Recommend(customer, values, k, Flag("exclude_bought"), Flag("exact"), Flag("model_only"));
            return Results.Ok(new
            {
                customer_id = customer,
                known_customer = result.KnownCustomer,
                source = result.Source,
                note = result.KnownCustomer ? null : "customer not seen in training: the out-of-vocabulary embedding was used",
                k,
                k_capped = capped ? $"k capped at {maxK}" : null,
                // A blend without a ranker (blend.enabled: false) orders the union without scores: null, not NaN (not JSON).
                items = result.Items.Select(i => new { article_id = i.ArticleId, score = float.IsNaN(i.Score) ? (float?)null : i.Score, sources = i.Sources, features = i.Features }),
            });
        }
        catch (ArgumentException e)
        {
            return Results.BadRequest(new { error = e.Message });
        }
    }
}
