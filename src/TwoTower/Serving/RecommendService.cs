using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace TwoTower.Serving;

/// <summary>
/// The recommend service (ASP.NET Core minimal API): GET /recommend?customer_id=…&amp;age=…&amp;month=…&amp;k=…
/// (optional exclude_bought=true, exact=true) → JSON; GET /health. Bad parameters get a 400 with a
/// message; an unknown customer gets the out-of-vocabulary embedding and the response says so;
/// k is capped at serve.max_k.
/// </summary>
public static class RecommendService
{
    public static WebApplication Build(Recommender recommender, string host, int port, int maxK)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{host}:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/health", () => Results.Ok(new { status = "ok", articles = recommender.ArticleIds.Length }));
        app.MapGet("/recommend", (HttpRequest request) =>
        {
            var query = request.Query;
            var customer = query["customer_id"].ToString();
            if (customer.Length == 0)
                return Results.BadRequest(new { error = "customer_id is required" });
            var k = 10;
            if (query.TryGetValue("k", out var kText) && (!int.TryParse(kText, NumberStyles.Integer, CultureInfo.InvariantCulture, out k) || k < 1))
                return Results.BadRequest(new { error = $"k must be a positive integer; got '{kText}'" });
            var capped = k > maxK;
            k = Math.Min(k, maxK);
            bool Flag(string name) => query[name].ToString() is "true" or "1";
            var values = query.Where(p => p.Key is not ("customer_id" or "k" or "exclude_bought" or "exact"))
                .ToDictionary(p => p.Key, p => p.Value.ToString());
            try
            {
                var result = recommender.Recommend(customer, values, k, Flag("exclude_bought"), Flag("exact"));
                return Results.Ok(new
                {
                    customer_id = customer,
                    known_customer = result.KnownCustomer,
                    note = result.KnownCustomer ? null : "customer not seen in training: the out-of-vocabulary embedding was used",
                    k,
                    k_capped = capped ? $"k capped at {maxK}" : null,
                    items = result.Items.Select(i => new { article_id = i.ArticleId, score = i.Score, features = i.Features }),
                });
            }
            catch (ArgumentException e)
            {
                return Results.BadRequest(new { error = e.Message });
            }
        });
        return app;
    }
}
