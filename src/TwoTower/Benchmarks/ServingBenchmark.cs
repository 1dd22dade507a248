using System.Diagnostics;
using System.Net;
using TwoTower.Config;
using TwoTower.Pipeline;
using TwoTower.Serving;

namespace TwoTower.Benchmarks;

/// <summary>
/// The `BenchmarkServing` target: latency of one query through the index (k = 100) and by exact
/// scoring, of the HTTP service under an open-loop load of `rate` requests per second on loopback
/// (client in this process), and of `Serve` in a process of its own loaded by 16 connections
/// (k = 12 and 100), as p50 / p99. Not a test: figures depend on the machine.
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
        var exact = Percentiles(queries.Take(300).Select(q => Time(() => recommender.Recommend("c", new Dictionary<string, string>(), 100, false, exact: true, modelOnly: true))));
        // The blend for customers with a history: the first article ids of the customer vocabulary are real customers.
        var customers = Data.Vocabulary.Read(packageDir, recommender.CustomerIdColumn).Values.Take(5000).ToArray();
        foreach (var c in customers.Take(500))   // unmeasured: the blend's code reaches its final tier of the JIT
            recommender.Recommend(c, new Dictionary<string, string> { ["age"] = "30", ["month"] = "5" }, 12, false, false);
        var blendTimes = new[] { 12, 100 }.Select(k => (K: k, Times: recommender.HasBlend
            ? Percentiles(customers.Take(500).Select(c => Time(() => recommender.Recommend(c, new Dictionary<string, string> { ["age"] = "30", ["month"] = "5" }, k, false, false))))
            : (P50: double.NaN, P99: double.NaN))).ToArray();

        var port = FreePort();
        var app = RecommendService.Build(recommender, ServiceSettings.From(config) with { Host = "127.0.0.1", Port = port });
        app.StartAsync().GetAwaiter().GetResult();
        var openLoop = new List<(int K, List<double> Latencies, int Errors, string LastError)>();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            http.GetAsync("/health").GetAwaiter().GetResult().Dispose();
            var (errors, lastError) = (0, "");
            // Each load first, unmeasured, for WarmUpSeconds: connections open and the JIT's tiers settle (with
            // dynamic PGO a method is compiled three times; after 2 s of each load the first measured one still
            // had a p99 of 15–24 ms, the second 2 ms).
            foreach (var k in new[] { 12, 100 })
                Load(http, rate, WarmUpSeconds, k, customers, ref errors, ref lastError);
            foreach (var k in new[] { 12, 100 })
            {
                (errors, lastError) = (0, "");
                openLoop.Add((k, Load(http, rate, seconds, k, customers, ref errors, ref lastError), errors, lastError));
            }
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
        }
        var separate = new[] { 12, 100 }.Select(k => (K: k, Result: SeparateProcessLoad(k, seconds))).ToArray();
        log.Info($"\nServing benchmark, {recommender.ArticleIds.Length:N0} articles, {Environment.ProcessorCount} cores:");
        log.Info($"  query tower (one customer)       p50 {embed.P50:F3} ms  p99 {embed.P99:F3} ms");
        log.Info($"  index search, k = 100            p50 {index.P50:F3} ms  p99 {index.P99:F3} ms");
        log.Info($"  exact scoring + top 100          p50 {exact.P50:F3} ms  p99 {exact.P99:F3} ms");
        foreach (var (k, t) in blendTimes)
            log.Info($"  blend (index, union, features, ranker), k = {k,-3} p50 {t.P50:F3} ms  p99 {t.P99:F3} ms");
        foreach (var (k, latencies, errors, lastError) in openLoop)
        {
            var service = Percentiles(latencies);
            log.Info($"  HTTP /recommend{(recommender.HasBlend ? " (the blend)" : "")} at {rate}/s, k={k}  p50 {service.P50:F3} ms  p99 {service.P99:F3} ms  " +
                     $"({latencies.Count:N0} requests, {errors} errors{(errors > 0 ? ": " + lastError : "")})");
        }
        foreach (var (k, r) in separate)
            log.Info($"  HTTP, server in its own process, {Connections} connections as fast as answered, k={k}: {r.Throughput:N0} requests/s, " +
                     $"p50 {r.P50:F3} ms  p99 {r.P99:F3} ms  ({r.Requests:N0} requests, {r.Errors} errors)");
    }

    const int Connections = 16;
    const double WarmUpSeconds = 5;

    /// <summary>
    /// The service as deployed: `Serve` in a process of its own (this command line, target Serve,
    /// another port), loaded from here by 16 connections each sending its next request when the last
    /// is answered (closed loop), after 2 s of unmeasured warm-up.
    /// </summary>
    static (double Throughput, double P50, double P99, int Requests, int Errors) SeparateProcessLoad(int k, double seconds)
    {
        var port = FreePort();
        using var server = StartServer(port);
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Connections }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            WaitUntilHealthy(http, server);
            ClosedLoop(http, k, 2);
            var clock = Stopwatch.StartNew();
            var (latencies, errors) = ClosedLoop(http, k, seconds);
            var (p50, p99) = Percentiles(latencies);
            return (latencies.Count / clock.Elapsed.TotalSeconds, p50, p99, latencies.Count, errors);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            server.WaitForExit();
        }
    }

    /// <summary>This same command line (the build host, its config, --set and --artifacts), with target Serve on the given port.</summary>
    static Process StartServer(int port)
    {
        var args = Environment.GetCommandLineArgs();
        var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            info.ArgumentList.Add(args[0]);
        foreach (var a in args.Skip(1).Where(a => !a.StartsWith("--target", StringComparison.Ordinal) && !a.StartsWith("--rate", StringComparison.Ordinal)
                                                  && !a.StartsWith("--seconds", StringComparison.Ordinal) && a != "BenchmarkServing"))
            info.ArgumentList.Add(a);
        foreach (var a in new[] { "--target=Serve", "--set", $"serve.port={port}", "--set", "serve.host=127.0.0.1", "--set", "serve.max_concurrent_requests=1000" })
            info.ArgumentList.Add(a);
        info.Environment["NO_COLOR"] = "1";
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    static void WaitUntilHealthy(HttpClient http, Process server)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (server.HasExited)
                throw new PipelineError($"the Serve process for the benchmark exited with code {server.ExitCode}");
            try
            {
                using var response = http.GetAsync("/health").GetAwaiter().GetResult();
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            Thread.Sleep(100);
        }
        throw new PipelineError("the Serve process for the benchmark did not answer /health within 60 s");
    }

    /// <summary>Connections workers, each sending its next request when the last is answered, for `seconds`.</summary>
    static (List<double> Latencies, int Errors) ClosedLoop(HttpClient http, int k, double seconds)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, Connections).Select(w => Task.Run(async () =>
        {
            var latencies = new List<double>();
            var errors = 0;
            for (var i = 0; Stopwatch.GetTimestamp() < deadline; i++)
            {
                var start = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync($"/recommend?customer_id=customer-{(w * 7919 + i) % 5000}&age=31&month=4&k={k}");
                await response.Content.ReadAsStringAsync();
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                if (response.StatusCode != HttpStatusCode.OK)
                    errors++;
            }
            return (latencies, errors);
        })).ToArray();
        Task.WaitAll(workers);
        return (workers.SelectMany(t => t.Result.latencies).ToList(), workers.Sum(t => t.Result.errors));
    }

    /// <summary>Open loop: request i is sent at i / rate seconds, whatever the earlier ones are doing.</summary>
    /// <param name="customers">Known customers, asked for in turn.</param>
    static List<double> Load(HttpClient http, int rate, double seconds, int k, string[] customers, ref int errors, ref string lastError)
    {
        var total = (int)(rate * seconds);
        var tasks = new Task<(double Ms, string? Error)>[total];
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds(i / (double)rate);
            while (clock.Elapsed < due)
                Thread.Sleep(1);  // not a spin: the client must leave the cores to the server
            var customer = customers[i % customers.Length];
            tasks[i] = Task.Run(async () =>
            {
                var start = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync($"/recommend?customer_id={Uri.EscapeDataString(customer)}&age=31&month=4&k={k}");
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
