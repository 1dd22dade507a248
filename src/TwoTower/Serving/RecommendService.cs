using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TwoTower.Config;

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
/// the model's alone with model_only; GET /health. Bad parameters get a 400 with a
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
        return app;
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
