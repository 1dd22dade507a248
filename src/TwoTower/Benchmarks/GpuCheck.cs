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
public static class GpuCheck
{
    const int CpuComparisonRows = 1_000_000;

    public static void Run(PipelineConfig config, ArtifactStore store, IPipelineLog log)
    {
        using var gpu = Backend.CreateGpu(config.Str("accelerator"), out var reason);
        using var simd = new SimdKernels(config.Threads);
        log.Info($"GpuCheck: {reason}; CPU backend {simd.Name}");
        var rows = new List<(string What, string Value)>();
        void Row(string what, string value)
        {
            rows.Add((what, value));
            log.Info($"{what}: {value}");
        }

        var features = FeatureSet.From(config);
        var train = TrainingColumns.Read(store, "train");
        var val = TrainingColumns.Read(store, "val");
        var vocab = TrainedModel.VocabularySizes(store, features);

        // 1. Ops on the same inputs at the configured batch size; times with the operands already on the device, waiting for the result.
        var b = (int)config.Int("train.batch_size");
        const int d = 16;
        var rng = new Rng(5);
        float[] Random(int n, double scale = 1)
        {
            var values = new float[n];
            for (var i = 0; i < n; i++)
                values[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
            return values;
        }
        var q = Random(b * d, 0.8);
        var c = Random(b * d, 0.8);
        var offsets = Random(b, 3);
        var ids = Enumerable.Range(0, b).Select(i => i % 97).ToArray();
        (float[] Loss, float[] Dq, float[] Dc, double Seconds) Softmax(IKernels k)
        {
            using var vq = k.Upload(q);
            using var vc = k.Upload(c);
            using var vo = k.Upload(offsets);
            using var vi = k.Upload(ids);
            using var loss = k.Allocate<float>(b);
            using var dq = k.Allocate<float>(b * d);
            using var dc = k.Allocate<float>(b * d);
            var result = (new float[b], new float[b * d], new float[b * d]);
            var seconds = PipelineBenchmark.Median(10, () =>
            {
                k.InBatchSoftmax(vq, vc, b, d, vo, 1f, vi, loss, dq, dc);
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

        var x = Random(b * 44);
        var w = Random(44 * 16);
        var bias = Random(16);
        float[] Dense(IKernels k)
        {
            using var vx = k.Upload(x);
            using var vw = k.Upload(w);
            using var vb = k.Upload(bias);
            using var vy = k.Allocate<float>(b * 16);
            var y = new float[b * 16];
            k.DenseForward(vx, b, 44, vw, vb, 16, true, vy);
            k.CopyToHost(vy, y);
            return y;
        }
        Row($"dense forward {b}×44×16: max rel. diff", $"{MaxRel(Dense(gpu), Dense(simd)):E1}");

        // Where a training step's time goes: each op at the configured batch size on a table the size of
        // the customer vocabulary and a column the length of the training set, operands resident.
        var tableRows = vocab[features.QueryId] + 1;
        var columnRows = train.RowCount;
        var table = Random(tableRows * d, 0.05);
        var column = Enumerable.Range(0, columnRows).Select(i => (int)((long)i * 7919 % tableRows)).ToArray();
        var batchRows = Enumerable.Range(Math.Max(0, columnRows / 2 - b), Math.Min(b, columnRows)).ToArray();   // train.shuffle: batches (the default) reads consecutive rows
        b = batchRows.Length;   // a training set smaller than a batch is one batch
        var lrT = Enumerable.Range(0, 101).Select(s => 1e-3f).ToArray();
        Dictionary<string, double> OpTimes(IKernels k)
        {
            using var vColumn = k.Upload(column);
            using var vRows = k.Upload(batchRows);
            using var vIds = k.Allocate<int>(b);
            using var vTable = k.Upload(table.ToArray());
            using var vM = k.Allocate<float>(table.Length);
            using var vV = k.Allocate<float>(table.Length);
            using var vGrad = k.Allocate<float>(table.Length);
            using var vStep = k.Allocate<int>(tableRows);
            using var vLrT = k.Upload(lrT);
            using var vx = k.Upload(x);
            using var vw = k.Upload(w);
            using var vb = k.Upload(bias);
            using var vy = k.Allocate<float>(b * 16);
            using var vdw = k.Allocate<float>(44 * 16);
            using var vdb = k.Allocate<float>(16);
            using var vdx = k.Allocate<float>(b * 44);
            using var groups = new RowGroups(k, b);
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
                [$"gather a batch's values of a column ({b:N0} of {columnRows:N0} rows; logQ, item ids)"] = Time(() => k.GatherRows(vColumn, vRows, b, vIds)),
                ["row groups of the batch's ids (host hash grouping; overlaps the device's previous step)"] = Time(() => groups.Build(column, batchRows)),
                ["row groups copied to the device"] = Time(groups.Upload),
                [$"embedding gather {b} × 16 ({tableRows:N0}-row table)"] = Time(() => k.EmbeddingGather(vTable, d, vColumn, vRows, b, vx, 44, 0)),
                [$"dense forward {b} × 44 → 16, relu"] = Time(() => k.DenseForward(vx, b, 44, vw, vb, 16, true, vy)),
                [$"dense backward {b} × 44 × 16 with dx"] = Time(() => k.DenseBackward(vx, b, 44, vw, 16, vy, vdw, vdb, vdx)),
                [$"embedding row gradients {b} × 16"] = Time(() => k.EmbeddingRowGradients(vdx, 44, 0, d, groups, vGrad)),
                ["lazy AdamW on the batch's rows (1 step each)"] = Time(() => k.AdamWRows(vTable, vGrad, vM, vV, d, groups.Rows, vStep, ++step, vLrT,
                    0.9f, 0.999f, 1e-7f, 0, 0)),
                ["dense AdamW 44 × 16"] = Time(() => k.AdamW(vw, vdw, vM, vV, 44 * 16, 1e-3f, 0.9f, 0.999f, 1e-7f, 0)),
            };
        }
        var opsGpu = OpTimes(gpu);
        var opsCpu = OpTimes(simd);
        foreach (var (op, micros) in opsGpu)
            Row($"{op}, µs GPU / CPU", $"{micros:F1} / {opsCpu[op]:F1}");

        // 2. A training epoch and the evaluation on the configured data.
        (EpochStats Stats, TwoTowerModel Model) Epoch(IKernels k)
        {
            var model = TwoTowerModel.Create(config, vocab);
            model.Initialize(config.Int("seed"));
            using var trainer = new Trainer(model, k, TrainOptions.From(config), train, features.CandidateId);
            return (trainer.RunEpoch(1), model);
        }
        var compare = train.RowCount <= CpuComparisonRows;
        var (gpuEpoch, gpuModel) = Epoch(gpu);
        Row($"epoch, {train.RowCount:N0} rows: s, rows/s GPU", $"{gpuEpoch.Seconds:F2}, {gpuEpoch.RowsPerSecond:N0}");
        var watch = Stopwatch.StartNew();
        var gpuRanks = CatalogueRanks.Compute(gpuModel, gpu, train, val, features, out var catalogue);
        Row($"evaluation {val.RowCount:N0} × {catalogue:N0}: s GPU", $"{watch.Elapsed.TotalSeconds:F2}");
        if (compare)
        {
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

        // 3. Rank counting at full H&M catalogue size on the GPU, operands resident (hours on ILGPU's CPU accelerator: skipped there).
        if (gpu.IsCpuAccelerator)
        {
            Row("rank counting 1M queries × 105,542 candidates", "skipped on ILGPU's CPU accelerator");
            Print(gpu, rows, log);
            return;
        }
        const int queries = 1_000_000, candidates = 105_542;
        using var bigQ = gpu.Upload(Random(queries * d));
        using var bigC = gpu.Upload(Random(candidates * d));
        using var positives = gpu.Upload(Random(queries * d));
        using var counts = gpu.Allocate<int>(queries);
        var first = new int[1];
        watch.Restart();
        gpu.CountScoresAbove(bigQ, queries, bigC, candidates, d, positives, counts);
        gpu.CopyToHost(counts, first);
        Row("rank counting 1M queries × 105,542 candidates × 16, s GPU", $"{watch.Elapsed.TotalSeconds:F2}");

        Print(gpu, rows, log);
    }

    static void Print(IlgpuKernels gpu, List<(string What, string Value)> rows, IPipelineLog log)
    {
        log.Info($"\n| GpuCheck ({gpu.Name}) | |\n|---|---|");
        foreach (var (what, value) in rows)
            log.Info($"| {what} | {value} |");
    }

    static double MaxRel(float[] a, float[] b) =>
        a.Zip(b).Max(p => Math.Abs(p.First - p.Second) / Math.Max(Math.Abs(p.Second), 1e-2));
}
