using System.Diagnostics;
using TwoTower.Benchmarks;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;
using TwoTower.Pipeline;
using TwoTower.Stages;

using TwoTower.Tests.Kernels;

namespace TwoTower.Tests;

/// <summary>Cache rules of the stages, on small built-in data in a temporary folder.</summary>
public class PipelineTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-pipeline-").FullName;
    static readonly Stage[] DataStages = [new IngestStage(), new EncodeStage(), new NormalizeStage()];

    public void Dispose() => Directory.Delete(dir, true);


    PipelineConfig Config(params string[] overrides) =>
        PipelineConfig.Parse("", "test", [$"data.dir={dir}/data", "synth.scale=0.02", .. overrides]);

    /// <summary>Runs the stages that are not up to date, as the Cake tasks do; returns the names that ran.</summary>
    static List<string> RunPipeline(ArtifactStore store, PipelineConfig config)
    {
        Synthesizer.EnsureData(config, new RecordingLog());
        var ran = new List<string>();
        foreach (var stage in DataStages)
        {
            var fingerprint = store.Fingerprint(stage, config);
            if (store.IsUpToDate(stage.Name, fingerprint))
                continue;
            store.Run(stage, config, new RecordingLog(), fingerprint, resume: false);
            ran.Add(stage.Name);
        }
        return ran;
    }

    [Fact]
    public void UnchangedStagesAreSkippedAndAChangeRerunsThatStageAndWhatFollows()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        Assert.Equal(["ingest", "encode", "normalize"], RunPipeline(store, Config()));
        Assert.Empty(RunPipeline(store, Config()));
        Assert.Equal(["normalize"], RunPipeline(store, Config("normalize.epsilon=1e-6")));
        Assert.Empty(RunPipeline(store, Config("normalize.epsilon=1e-6")));
        Assert.Equal(["ingest", "encode", "normalize"], RunPipeline(store, Config("normalize.epsilon=1e-6", "features.query.raw=[month_sin]")));
        // The history is Encode's: Ingest stays.
        Assert.Equal(["encode", "normalize"], RunPipeline(store, Config("normalize.epsilon=1e-6", "features.query.raw=[month_sin]", "features.query.history.length=3")));
    }

    [Fact]
    public void AStageThatRunsAgainSaysWhatChangedSinceItsLastRun()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var (encode, normalize) = (DataStages[1], DataStages[2]);
        Assert.Null(store.ChangesSince(DataStages[0].Name, "never ran here"));
        RunPipeline(store, Config());
        var config = Config("features.query.history.length=3", "normalize.epsilon=1e-6");
        Assert.Equal("features.query.history.length: 0 → 3", store.ChangesSince(encode.Name, store.Fingerprint(encode, config)));
        store.Run(encode, config, new RecordingLog(), store.Fingerprint(encode, config), resume: false);
        Assert.Equal(["features.query.history.length: 0 → 3", "normalize.epsilon: 1E-07 → 1E-06", "encode ran with other settings or inputs"],
            store.ChangesSince(normalize.Name, store.Fingerprint(normalize, config))!.Split("; "));
        RunPipeline(store, config);
        File.Delete(Path.Combine(store.StageDir(normalize.Name), "val.parquet"));
        Assert.Equal("its outputs were changed or removed since it ran", store.ChangesSince(normalize.Name, store.Fingerprint(normalize, config)));
    }

    [Fact]
    public void ChangedInputDataRerunsEverything()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        RunPipeline(store, Config());
        Assert.Equal(["ingest", "encode", "normalize"], RunPipeline(store, Config("synth.seed=5")));
    }

    [Fact]
    public void AMissingOutputOrAnInterruptedRunIsRepaired()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        RunPipeline(store, Config());
        var reference = SnapshotFiles(store.Root);
        File.Delete(Path.Combine(store.StageDir("encode"), "val.parquet"));
        // A run killed half-way leaves a partial folder and no manifest for its stage.
        Directory.CreateDirectory(Path.Combine(store.Root, "normalize.partial"));
        File.WriteAllText(Path.Combine(store.Root, "normalize.partial", "train.parquet"), "half");
        Directory.Delete(store.StageDir("normalize"), true);
        Assert.Equal(["encode", "normalize"], RunPipeline(store, Config()));
        Assert.Equal(reference, SnapshotFiles(store.Root));
    }

    [Fact]
    public void ValidateEveryRecordsPerEpochMetricsEqualToEvaluateAfterTheLastEpoch()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("train.validate_every=1", "train.epochs=2", "train.batch_size=256");
        RunPipeline(store, config);
        Stage[] modelStages = [new TrainStage(), new BlendStage(), new EvaluateStage()];
        foreach (var stage in modelStages)
            store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);
        var history = System.Text.Json.JsonSerializer.Deserialize<List<Model.EpochStats>>(
            File.ReadAllText(Path.Combine(store.StageDir("train"), Model.TrainedModel.HistoryFile)))!;
        Assert.Equal(2, history.Count);
        Assert.All(history, h => Assert.NotNull(h.ValidationHitAt));
        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(store.StageDir("evaluate"), "metrics.json")));
        var model = metrics.RootElement.GetProperty("methods")[0];
        Assert.Equal("model", model.GetProperty("name").GetString());
        var evaluated = model.GetProperty("metrics").GetProperty("hit_at").GetProperty("100").GetDouble();
        Assert.Equal(evaluated, history[^1].ValidationHitAt![100], 12);
        Assert.InRange(evaluated, 0.0, 1.0);
    }

    [Fact]
    public void ResumeWithoutACheckpointSaysItStartsFromScratch()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("train.epochs=1", "train.batch_size=256");
        RunPipeline(store, config);
        var log = new RecordingLog();
        store.Run(new TrainStage(), config, log, store.Fingerprint(new TrainStage(), config), resume: true);
        Assert.Contains(log.Lines, l => l.StartsWith("warning: --resume: no checkpoint of an interrupted train run") && l.EndsWith("starting from scratch"));
    }

    /// <summary>
    /// per_customer_ap12.csv holds each customer of the per-customer table once, under their id in the
    /// validation file, and each method's column averages to that method's MAP@12 in metrics.json; the
    /// union of the sources is reported as a candidate set.
    /// </summary>
    [Fact]
    public void ThePerCustomerApFileAveragesToTheReportsMap12()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("train.epochs=1", "train.batch_size=256", "threads=2", "blend.trees=20");
        RunPipeline(store, config);
        foreach (var stage in new Stage[] { new TrainStage(), new BlendStage(), new EvaluateStage() })
            store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);

        var lines = File.ReadAllLines(Evaluation.PerCustomerEvaluation.CustomerApPath(store));
        var header = lines[0].Split(',');
        var rows = lines.Skip(1).Select(line => line.Split(',')).ToList();
        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(store.StageDir("evaluate"), "metrics.json")));
        var methods = metrics.RootElement.GetProperty("per_customer").EnumerateArray().ToList();
        Assert.Equal(methods.Count + 1, header.Length);
        foreach (var method in methods)
        {
            var column = Array.IndexOf(header, method.GetProperty("method").GetString());
            Assert.True(column > 0, method.GetProperty("method").GetString());
            Assert.Equal(method.GetProperty("customers").GetInt32(), rows.Count);
            Assert.Equal(method.GetProperty("map12").GetDouble(),
                rows.Average(r => double.Parse(r[column], System.Globalization.CultureInfo.InvariantCulture)), 12);
        }
        Assert.Equal(rows.Count, rows.Select(r => r[0]).Distinct().Count());

        // The union of the sources is a candidate set, not a ranking: no AP@12 of its own, but a recall and size
        // bounded by its sources' (it holds each source's whole list, and no more than all of them).
        Assert.DoesNotContain("union of the sources", header);
        var union = metrics.RootElement.GetProperty("union");
        var sources = methods.Where(m => m.GetProperty("method").GetString() is not ("blend" or "popularity (all time)")).ToList();
        Assert.Equal(6, sources.Count);
        Assert.InRange(union.GetProperty("recall").GetDouble(), sources.Max(m => m.GetProperty("list_recall").GetDouble()), 1.0);
        Assert.InRange(union.GetProperty("mean_candidates").GetDouble(), sources.Max(m => m.GetProperty("mean_list_length").GetDouble()),
            sources.Sum(m => m.GetProperty("mean_list_length").GetDouble()));

        // Each value sits on its customer's row: buy_again proposes only what the customer bought in
        // training, so its AP is 0 for a customer whose validation basket holds none of those (from the CSVs).
        ILookup<string, string> Purchases(string file) => File.ReadLines(Path.Combine(dir, "data", file)).Skip(1)
            .Select(line => line.Split(',')).ToLookup(f => f[1], f => f[2]);
        var (bought, basket) = (Purchases("train_df.csv"), Purchases("val_df.csv"));
        var buyAgain = Array.IndexOf(header, "buy_again");
        var repeats = rows.Select(r => (Ap: double.Parse(r[buyAgain], System.Globalization.CultureInfo.InvariantCulture),
            Repeat: basket[r[0].Trim('"')].Intersect(bought[r[0].Trim('"')]).Any())).ToList();
        Assert.All(rows, r => Assert.True(basket.Contains(r[0].Trim('"')), r[0]));
        Assert.All(repeats, x => Assert.True(x.Repeat || x.Ap == 0));
        Assert.Contains(repeats, x => x.Ap > 0);
        Assert.Contains(repeats, x => !x.Repeat);
    }

    [Fact]
    public void EarlyStoppingKeepsTheBestEpochsWeights()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("train.validate_every=1", "train.epochs=4", "train.batch_size=128", "train.learning_rate=0.05",
            "train.early_stopping_metric=hit@10", "train.early_stopping_patience=1");
        RunPipeline(store, config);
        Stage[] modelStages = [new TrainStage(), new BlendStage(), new EvaluateStage()];
        foreach (var stage in modelStages)
            store.Run(stage, config, new RecordingLog(), store.Fingerprint(stage, config), resume: false);
        var history = System.Text.Json.JsonSerializer.Deserialize<List<Model.EpochStats>>(
            File.ReadAllText(Path.Combine(store.StageDir("train"), Model.TrainedModel.HistoryFile)))!;
        Assert.True(history.Count < 4, "this configuration stops before its last epoch");
        var best = history.Max(h => h.ValidationHitAt![10]);
        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(store.StageDir("evaluate"), "metrics.json")));
        var evaluated = metrics.RootElement.GetProperty("methods")[0].GetProperty("metrics").GetProperty("hit_at").GetProperty("10").GetDouble();
        Assert.Equal(best, evaluated, 12);
        Assert.False(File.Exists(Path.Combine(store.StageDir("train"), "best.safetensors")));
    }

    [Fact]
    public void IlgpuCpuAcceleratorTrainsAndEvaluatesEndToEnd()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("accelerator=ilgpu-cpu", "synth.scale=0.005", "train.epochs=1", "train.batch_size=256");
        RunPipeline(store, config);
        var log = new RecordingLog();
        foreach (Stage stage in new Stage[] { new TrainStage(), new BlendStage(), new EvaluateStage() })
            store.Run(stage, config, log, store.Fingerprint(stage, config), resume: false);
        Assert.Contains(log.Lines, l => l.Contains("Backend: ilgpu CPU"));
        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(store.StageDir("evaluate"), "metrics.json")));
        Assert.InRange(metrics.RootElement.GetProperty("methods")[0].GetProperty("metrics").GetProperty("hit_at").GetProperty("100").GetDouble(), 0.0, 1.0);
    }

    /// <summary>The GPU check script runs through on ILGPU's CPU accelerator, so device time is not spent finding its bugs.</summary>
    [Fact]
    public void GpuCheckDryRunOnIlgpuCpuPrintsTheTableWithMatchingLosses()
    {
        var store = new ArtifactStore(Path.Combine(dir, "artifacts"));
        var config = Config("accelerator=ilgpu-cpu", "synth.scale=0.005", "train.batch_size=128");
        RunPipeline(store, config);
        var log = new RecordingLog();
        GpuCheck.Run(config, store, log);
        Assert.Contains(log.Lines, l => l.Contains("| GpuCheck (ilgpu CPU"));
        var losses = log.Lines.Single(l => l.StartsWith("| epoch loss per example GPU / CPU")).Split('|')[2].Split('/')
            .Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(losses[1], losses[0], losses[1] * 1e-4);
        var ranksEqual = log.Lines.Single(l => l.StartsWith("| evaluation: s CPU; ranks equal")).Split(';')[^1].TrimEnd(' ', '|', '%');
        Assert.InRange(double.Parse(ranksEqual, System.Globalization.CultureInfo.InvariantCulture), 99.0, 100.0);
        Assert.Contains(log.Lines, l => l.StartsWith("| rank counting 1M queries") && l.Contains("skipped"));
    }

    [Fact]
    public void AskingForAnAbsentAcceleratorIsAnErrorListingWhatWasFound()
    {
        var log = new RecordingLog();
        using var auto = Backend.Create("auto", 2, log) as IDisposable;
        if (!log.Lines.Any(l => l.Contains("found 0 CUDA and 0 OpenCL")))
            return;  // a machine with a GPU: nothing is absent
        foreach (var choice in new[] { "cuda", "opencl" })
        {
            var error = Assert.Throws<PipelineError>(() => Backend.Create(choice, 2, log));
            Assert.Contains($"accelerator '{choice}' asked for, but found 0 CUDA and 0 OpenCL GPU device(s)", error.Message);
        }
    }

    [Fact]
    public void AutoAcceleratorSaysWhatItFoundAndFallsBackToSimdWithoutAGpu()
    {
        var log = new RecordingLog();
        var kernels = Backend.Create("auto", 2, log);
        Assert.Contains(log.Lines, l => l.Contains("accelerator 'auto': found"));
        if (log.Lines.Any(l => l.Contains("found 0 CUDA and 0 OpenCL")))
            Assert.IsType<SimdKernels>(kernels);
        (kernels as IDisposable)?.Dispose();
    }


    static SortedDictionary<string, string> SnapshotFiles(string root) =>
        new(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), ArtifactStore.HashFile), StringComparer.Ordinal);

    /// <summary>Runs the command-line host (built beside the tests) with the given arguments.</summary>
    Process StartHost(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "TwoTower.Build.dll"));
        foreach (var a in args)
            info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    string[] HostArgs(string artifacts) =>
    [
        "--target=Encode", $"--config={Path.Combine(TestPaths.RepoRoot, "pipeline.yaml")}", $"--artifacts={artifacts}",
        "--set", $"data.dir={dir}/data", "--set", "synth.scale=0.3",
    ];

    [Fact]
    public void KillingIngestOrEncodeAtRandomMomentsThenRerunningGivesIdenticalOutputs()
    {
        var reference = Path.Combine(dir, "reference");
        var started = Stopwatch.StartNew();
        var host = StartHost(HostArgs(reference));
        Assert.True(host.WaitForExit(120_000));
        Assert.Equal(0, host.ExitCode);
        var fullRun = started.Elapsed;
        var expected = SnapshotFiles(reference);
        Assert.Contains(Path.Combine("encode", "train.parquet"), expected.Keys);

        var rng = new Rng(12345);
        for (var kill = 0; kill < 5; kill++)
        {
            var artifacts = Path.Combine(dir, $"killed{kill}");
            var victim = StartHost(HostArgs(artifacts));
            Thread.Sleep(TimeSpan.FromSeconds(rng.NextDouble() * fullRun.TotalSeconds));
            victim.Kill(entireProcessTree: true);
            victim.WaitForExit();
            var rerun = StartHost(HostArgs(artifacts));
            Assert.True(rerun.WaitForExit(120_000));
            Assert.Equal(0, rerun.ExitCode);
            var actual = SnapshotFiles(artifacts);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public async Task BadInputExitsNonZeroWithAMessageAndNoStackTrace()
    {
        Directory.CreateDirectory(Path.Combine(dir, "bad"));
        File.WriteAllText(Path.Combine(dir, "bad", "train_df.csv"), "customer_id,article_id\n1,2\n");
        File.WriteAllText(Path.Combine(dir, "bad", "val_df.csv"), "customer_id,article_id\n1,2\n");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "TwoTower.Build.dll"), "--target=Ingest",
                     $"--config={Path.Combine(TestPaths.RepoRoot, "pipeline.yaml")}", "--set", $"data.dir={dir}/bad" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("missing column 'garment_group_name'. Columns found: customer_id, article_id", await stderr);
        Assert.DoesNotContain("   at ", await stderr + stdout);
        Assert.False(Directory.Exists(Path.Combine(dir, "artifacts", "ingest")));
    }
}
