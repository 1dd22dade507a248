using System.Diagnostics;
using System.Net;
using TwoTower.Config;
using TwoTower.Pipeline;
using TwoTower.Serving;

namespace TwoTower.Benchmarks;

/// <summary>
/// The `BenchmarkServing` target: latency of one query through the index (k = 100) and by exact
/// scoring, and of the HTTP service under an open-loop load of `rate` requests per second on
/// loopback, as p50 / p99. Not a test: figures depend on the machine.
/// </summary>
public static class ServingBenchmark
{
    public static void Run(PipelineConfig config, string packageDir, IPipelineLog log, int rate, double seconds)
    {
        using var recommender = new Recommender(packageDir);
        var rng = new Rng(7);
        var queries = Enumerable.Range(0, 2000).Select(i =>
            recommender.EmbedQuery("customer-" + rng.NextInt(1000), new Dictionary<string, string> { ["age"] = (18 + rng.NextInt(60)).ToString(), ["month"] = (1 + rng.NextInt(12)).ToString() }, out _)).ToArray();
        foreach (var q in queries.Take(200))
            recommender.IndexSearch(q, 100);
        var index = Percentiles(queries.Select(q => Time(() => recommender.IndexSearch(q, 100))));
        var embed = Percentiles(queries.Select(q => Time(() => recommender.EmbedQuery("c", new Dictionary<string, string> { ["age"] = "30", ["month"] = "5" }, out _))));
        var exact = Percentiles(queries.Take(300).Select(q => Time(() => recommender.Recommend("c", new Dictionary<string, string>(), 100, false, exact: true))));

        var port = FreePort();
        var app = RecommendService.Build(recommender, ServiceSettings.From(config) with { Host = "127.0.0.1", Port = port });
        app.StartAsync().GetAwaiter().GetResult();
        List<double> latencies = [];
        var errors = 0;
        var lastError = "";
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            http.GetAsync("/health").GetAwaiter().GetResult().Dispose();
            // Two seconds of the same load first, unmeasured: the JIT's tiering settles, connections open.
            Load(http, rate, 2, ref errors, ref lastError);
            latencies = Load(http, rate, seconds, ref errors, ref lastError);
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
        }
        var service = Percentiles(latencies);
        log.Info($"\nServing benchmark, {recommender.ArticleIds.Length:N0} articles, {Environment.ProcessorCount} cores:");
        log.Info($"  query tower (one customer)       p50 {embed.P50:F3} ms  p99 {embed.P99:F3} ms");
        log.Info($"  index search, k = 100            p50 {index.P50:F3} ms  p99 {index.P99:F3} ms");
        log.Info($"  exact scoring + top 100          p50 {exact.P50:F3} ms  p99 {exact.P99:F3} ms");
        log.Info($"  HTTP /recommend at {rate}/s, k=100  p50 {service.P50:F3} ms  p99 {service.P99:F3} ms  ({latencies.Count:N0} requests, {errors} errors{(errors > 0 ? ": " + lastError : "")})");
    }

    /// <summary>Open loop: request i is sent at i / rate seconds, whatever the earlier ones are doing.</summary>
    static List<double> Load(HttpClient http, int rate, double seconds, ref int errors, ref string lastError)
    {
        var total = (int)(rate * seconds);
        var tasks = new Task<(double Ms, string? Error)>[total];
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds(i / (double)rate);
            while (clock.Elapsed < due)
                Thread.Sleep(1);  // not a spin: the client must leave the cores to the server
            var customer = "customer-" + (i % 5000);
            tasks[i] = Task.Run(async () =>
            {
                var start = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync($"/recommend?customer_id={customer}&age=31&month=4&k=100");
                var body = await response.Content.ReadAsStringAsync();
                return (Stopwatch.GetElapsedTime(start).TotalMilliseconds,
                    response.StatusCode == HttpStatusCode.OK ? null : $"{(int)response.StatusCode} {body}");
            });
        }
        Task.WaitAll(tasks);
        foreach (var t in tasks.Where(t => t.Result.Error != null))
        {
            errors++;
            lastError = t.Result.Error!;
        }
        return tasks.Select(t => t.Result.Ms).ToList();
    }

    static double Time(Action action)
    {
        var start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    static (double P50, double P99) Percentiles(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return (sorted[sorted.Length / 2], sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))]);
    }

    /// <summary>A loopback port free at the moment of asking.</summary>
    internal static int FreePort()
    {
        var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        var port = ((IPEndPoint)socket.LocalEndpoint).Port;
        socket.Stop();
        return port;
    }
}
