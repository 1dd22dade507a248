using System.Diagnostics;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Kernels.Ilgpu;
using TwoTower.Kernels.Simd;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Benchmarks;

/// <summary>
/// The `GpuCheck` target, for a machine with a GPU: the ILGPU ops against the SIMD backend on the
/// same random inputs (max relative difference) and their time with the operands resident; one
/// training epoch and the full evaluation on the configured data (on both backends up to 1M
/// training rows, on the GPU alone above: the SIMD epoch at full H&M scale takes minutes); rank
/// counting of 1M queries against 105k candidates; then one table.
/// </summary>
public sealed class GpuCheck : IDisposable
{
    const int CpuComparisonRows = 1_000_000;

    readonly PipelineConfig config;
    readonly IPipelineLog log;
    readonly IlgpuKernels gpu;
    readonly SimdKernels simd;
    readonly FeatureSet features;
    readonly TrainingColumns train, val;
    readonly Dictionary<string, int> vocab;
    readonly List<(string What, string Value)> rows = [];
    // The shapes of the configured model: batch b, embedding width d, the query tower's first layer
    // inDim → outDim, and the towers' output width (the softmax's and the rank counting's vectors).
    readonly int b, d, inDim, outDim, towerDim;
    Rng rng = new(5);

    public static void Run(PipelineConfig config, ArtifactStore store, IPipelineLog log)
    {
        using var check = new GpuCheck(config, store, log);
        check.CompareSoftmax();
        check.CompareDense();
        check.TimeStepOps();
        check.CompareEpochAndEvaluation();
        check.TimeFullScaleRankCounting();
        check.Print();
    }

    GpuCheck(PipelineConfig config, ArtifactStore store, IPipelineLog log)
    {
        this.config = config;
        this.log = log;
        gpu = Backend.CreateGpu(config.Get(ConfigSchema.Accelerator), out var reason);
        simd = new SimdKernels(config.Threads);
        log.Info($"GpuCheck: {reason}; CPU backend {simd.Name}");
        features = FeatureSet.From(config);
        train = TrainingColumns.Read(store, "train");
        val = TrainingColumns.Read(store, "val");
        vocab = TrainedModel.VocabularySizes(store, features);
        var query = TwoTowerModel.Create(config, vocab).Query;
        b = (int)config.Get(ConfigSchema.Train.BatchSize);
        d = (int)config.Get(ConfigSchema.Model.EmbeddingDim);
        (inDim, outDim, towerDim) = (query.InputDim, query.LayerWeights[0].Cols, query.OutputDim);
    }

    public void Dispose()
    {
        gpu.Dispose();
        simd.Dispose();
    }

    void Row(string what, string value)
    {
        rows.Add((what, value));
        log.Info($"{what}: {value}");
    }

    float[] Random(int n, double scale = 1)
    {
        var values = new float[n];
        for (var i = 0; i < n; i++)
            values[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return values;
    }

    /// <summary>The in-batch softmax on the same random inputs (with logQ offsets and item ids) on both backends: max rel. diff and time, operands resident.</summary>
    void CompareSoftmax()
    {
        var q = Random(b * towerDim, 0.8);
        var c = Random(b * towerDim, 0.8);
        var offsets = Random(b, 3);
        var ids = Enumerable.Range(0, b).Select(i => i % 97).ToArray();
        (float[] Loss, float[] Dq, float[] Dc, double Seconds) Softmax(IKernels k)
        {
            using var vq = k.Upload(q);
            using var vc = k.Upload(c);
            using var vo = k.Upload(offsets);
            using var vi = k.Upload(ids);
            using var loss = k.Allocate<float>(b);
            using var dq = k.Allocate<float>(b * towerDim);
            using var dc = k.Allocate<float>(b * towerDim);
            var result = (new float[b], new float[b * towerDim], new float[b * towerDim]);
            var seconds = PipelineBenchmark.Median(10, () =>
            {
                k.InBatchSoftmax(vq, vc, b, towerDim, vo, 1f, vi, loss, dq, dc);
                k.CopyToHost(loss, result.Item1);
            });
            k.CopyToHost(dq, result.Item2);
            k.CopyToHost(dc, result.Item3);
            return (result.Item1, result.Item2, result.Item3, seconds);
        }
        var sg = Softmax(gpu);
        var sc = Softmax(simd);
        Row($"in-batch softmax {b}×{b}: max rel. diff (loss, dq, dc)", $"{MaxRel(sg.Loss, sc.Loss):E1}, {MaxRel(sg.Dq, sc.Dq):E1}, {MaxRel(sg.Dc, sc.Dc):E1}");
        Row($"in-batch softmax {b}×{b} forward+backward, ms GPU / CPU", $"{sg.Seconds * 1e3:F3} / {sc.Seconds * 1e3:F2}");
    }

    /// <summary>The query tower's first dense layer on the same random inputs on both backends.</summary>
    void CompareDense()
    {
        var x = Random(b * inDim);
        var w = Random(inDim * outDim);
        var bias = Random(outDim);
        float[] Dense(IKernels k)
        {
            using var vx = k.Upload(x);
            using var vw = k.Upload(w);
            using var vb = k.Upload(bias);
            using var vy = k.Allocate<float>(b * outDim);
            var y = new float[b * outDim];
            k.DenseForward(vx, b, inDim, vw, vb, outDim, true, vy);
            k.CopyToHost(vy, y);
            return y;
        }
        Row($"dense forward {b}×{inDim}×{outDim}: max rel. diff", $"{MaxRel(Dense(gpu), Dense(simd)):E1}");
    }

    /// <summary>
    /// Where a training step's time goes: each op at the configured batch size on a table the size of
    /// the customer vocabulary and a column the length of the training set, operands resident.
    /// </summary>
    void TimeStepOps()
    {
        var opsGpu = StepOpTimes(gpu);
        var opsCpu = StepOpTimes(simd);
        foreach (var (op, micros) in opsGpu)
            Row($"{op}, µs GPU / CPU", $"{micros:F1} / {opsCpu[op]:F1}");
    }

    Dictionary<string, double> StepOpTimes(IKernels k)
    {
        var tableRows = vocab[features.QueryId] + 1;
        var columnRows = train.RowCount;
        var column = Enumerable.Range(0, columnRows).Select(i => (int)((long)i * 7919 % tableRows)).ToArray();
        var batchRows = Enumerable.Range(Math.Max(0, columnRows / 2 - b), Math.Min(b, columnRows)).ToArray();   // train.shuffle: batches (the default) reads consecutive rows
        var n = batchRows.Length;   // a training set smaller than a batch is one batch
        var table = Random(tableRows * d, 0.05);
        using var vColumn = k.Upload(column);
        using var vRows = k.Upload(batchRows);
        using var vIds = k.Allocate<int>(n);
        using var vTable = k.Upload(table);
        using var vM = k.Allocate<float>(table.Length);
        using var vV = k.Allocate<float>(table.Length);
        using var vGrad = k.Allocate<float>(table.Length);
        using var vStep = k.Allocate<int>(tableRows);
        using var vLrT = k.Upload(Enumerable.Range(0, 101).Select(_ => 1e-3f).ToArray());
        using var vx = k.Upload(Random(n * inDim));
        using var vw = k.Upload(Random(inDim * outDim));
        using var vb = k.Upload(Random(outDim));
        using var vy = k.Allocate<float>(n * outDim);
        using var vdw = k.Allocate<float>(inDim * outDim);
        using var vdb = k.Allocate<float>(outDim);
        using var vdx = k.Allocate<float>(n * inDim);
        using var groups = new RowGroups(k, n);
        groups.Build(column, batchRows);
        groups.Upload();
        var sync = new float[1];
        var step = 0;
        double Time(Action op) => PipelineBenchmark.Median(21, () =>
        {
            op();
            k.CopyToHost(vy, sync);
        }) * 1e6;
        return new Dictionary<string, double>
        {
            ["waiting for the device (a 4-byte copy back), included in each row below"] = Time(() => { }),
            [$"gather a batch's values of a column ({n:N0} of {columnRows:N0} rows; logQ, item ids)"] = Time(() => k.GatherRows(vColumn, vRows, n, vIds)),
            ["row groups of the batch's ids (host hash grouping; overlaps the device's previous step)"] = Time(() => groups.Build(column, batchRows)),
            ["row groups copied to the device"] = Time(groups.Upload),
            [$"embedding gather {n} × {d} ({tableRows:N0}-row table)"] = Time(() => k.EmbeddingGather(vTable, d, vColumn, vRows, n, vx, inDim, 0)),
            [$"dense forward {n} × {inDim} → {outDim}, relu"] = Time(() => k.DenseForward(vx, n, inDim, vw, vb, outDim, true, vy)),
            [$"dense backward {n} × {inDim} × {outDim} with dx"] = Time(() => k.DenseBackward(vx, n, inDim, vw, outDim, vy, vdw, vdb, vdx)),
            [$"embedding row gradients {n} × {d}"] = Time(() => k.EmbeddingRowGradients(vdx, inDim, 0, d, groups, vGrad)),
            ["lazy AdamW on the batch's rows (1 step each)"] = Time(() => k.AdamWRows(vTable, vGrad, vM, vV, d, groups.Rows, vStep, ++step, vLrT,
                0.9f, 0.999f, 1e-7f, 0, 0)),
            [$"dense AdamW {inDim} × {outDim}"] = Time(() => k.AdamW(vw, vdw, vM, vV, inDim * outDim, 1e-3f, 0.9f, 0.999f, 1e-7f, 0)),
        };
    }

    /// <summary>A training epoch and the evaluation on the configured data; on both backends up to 1M training rows.</summary>
    void CompareEpochAndEvaluation()
    {
        (EpochStats Stats, TwoTowerModel Model) Epoch(IKernels k)
        {
            var model = TwoTowerModel.Create(config, vocab);
            model.Initialize(config.Get(ConfigSchema.Seed));
            using var trainer = new Trainer(model, k, TrainOptions.From(config), train, features.CandidateId);
            return (trainer.RunEpoch(1), model);
        }
        var (gpuEpoch, gpuModel) = Epoch(gpu);
        Row($"epoch, {train.RowCount:N0} rows: s, rows/s GPU", $"{gpuEpoch.Seconds:F2}, {gpuEpoch.RowsPerSecond:N0}");
        var watch = Stopwatch.StartNew();
        var gpuRanks = CatalogueRanks.Compute(gpuModel, gpu, train, val, features, out var catalogue);
        Row($"evaluation {val.RowCount:N0} × {catalogue:N0}: s GPU", $"{watch.Elapsed.TotalSeconds:F2}");
        if (train.RowCount > CpuComparisonRows)
            return;
        var (cpuEpoch, cpuModel) = Epoch(simd);
        Row("epoch: s, rows/s CPU SIMD", $"{cpuEpoch.Seconds:F2}, {cpuEpoch.RowsPerSecond:N0}");
        Row("epoch loss per example GPU / CPU", $"{gpuEpoch.LossPerExample:F5} / {cpuEpoch.LossPerExample:F5}");
        // Adam moves a weight by about ±lr per step whatever the gradient's size, so a near-zero gradient whose sign differs shows in the max.
        var diffs = gpuModel.Variables.Zip(cpuModel.Variables).SelectMany(p => p.First.Value.Zip(p.Second.Value, (g, c) => Math.Abs(g - c))).Order().ToArray();
        Row("weights after the epoch: abs. diff GPU vs CPU, median / 99th percentile / max",
            $"{diffs[diffs.Length / 2]:E1} / {diffs[(int)(diffs.Length * 0.99)]:E1} / {diffs[^1]:E1}");
        watch.Restart();
        var cpuRanks = CatalogueRanks.Compute(gpuModel, simd, train, val, features, out _);
        Row("evaluation: s CPU; ranks equal GPU vs CPU (same model)",
            $"{watch.Elapsed.TotalSeconds:F2}; {gpuRanks.Zip(cpuRanks).Count(p => p.First == p.Second) * 100.0 / cpuRanks.Length:F3}%");
    }

    /// <summary>Rank counting at full H&amp;M catalogue size on the GPU, operands resident (hours on ILGPU's CPU accelerator: skipped there).</summary>
    void TimeFullScaleRankCounting()
    {
        if (gpu.IsCpuAccelerator)
        {
            Row("rank counting 1M queries × 105,542 candidates", "skipped on ILGPU's CPU accelerator");
            return;
        }
        const int queries = 1_000_000, candidates = 105_542;
        using var bigQ = gpu.Upload(Random(queries * towerDim));
        using var bigC = gpu.Upload(Random(candidates * towerDim));
        using var positives = gpu.Upload(Random(queries * towerDim));
        using var counts = gpu.Allocate<int>(queries);
        var first = new int[1];
        var watch = Stopwatch.StartNew();
        gpu.CountScoresAbove(bigQ, queries, bigC, candidates, towerDim, positives, counts);
        gpu.CopyToHost(counts, first);
        Row($"rank counting 1M queries × 105,542 candidates × {towerDim}, s GPU", $"{watch.Elapsed.TotalSeconds:F2}");
    }

    void Print()
    {
        log.Info($"\n| GpuCheck ({gpu.Name}) | |\n|---|---|");
        foreach (var (what, value) in rows)
            log.Info($"| {what} | {value} |");
    }

    static double MaxRel(float[] a, float[] b) =>
        a.Zip(b).Max(p => Math.Abs(p.First - p.Second) / Math.Max(Math.Abs(p.Second), 1e-2));
}
