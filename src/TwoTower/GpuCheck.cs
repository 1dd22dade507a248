using System.Diagnostics;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower;

/// <summary>
/// The `GpuCheck` target, for a machine with a GPU: every op of the ILGPU backend against the SIMD
/// backend on the same random inputs (max relative difference), one training epoch and the full
/// evaluation at notebook scale on both backends, and rank counting of 1M queries against 105k
/// candidates on the GPU; then one table.
/// </summary>
public static class GpuCheck
{
    public static void Run(PipelineConfig config, ArtifactStore store, IPipelineLog log)
    {
        var choice = config.Str("accelerator") is "auto" or "cpu" ? "cuda" : config.Str("accelerator");
        using var gpu = IlgpuKernels.Create(choice, out var reason) ?? throw new PipelineError($"GpuCheck needs a GPU: {reason}");
        var simd = new SimdKernels(config.Threads);
        log.Info($"GpuCheck: {reason}; CPU backend {simd.Name}");
        var rows = new List<(string What, string Value)>();

        // 1. Ops on the same inputs.
        const int b = 2048, d = 16;
        var rng = new Rng(5);
        float[] Random(int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
        var q = Random(b * d, 0.8);
        var c = Random(b * d, 0.8);
        var offsets = Random(b, 3);
        var ids = Enumerable.Range(0, b).Select(i => i % 97).ToArray();
        float[] Loss(IKernels k, out float[] dq, out float[] dc)
        {
            var loss = new float[b];
            dq = new float[b * d];
            dc = new float[b * d];
            k.InBatchSoftmax(q, c, b, d, offsets, 1f, ids, loss, dq, dc);
            return loss;
        }
        var lg = Loss(gpu, out var dqg, out var dcg);
        var ls = Loss(simd, out var dqs, out var dcs);
        rows.Add(("in-batch softmax 2048×2048: max rel. diff (loss, dq, dc)", $"{MaxRel(lg, ls):E1}, {MaxRel(dqg, dqs):E1}, {MaxRel(dcg, dcs):E1}"));
        var softmaxGpu = Benchmarks.Median(10, () => Loss(gpu, out _, out _));
        var softmaxCpu = Benchmarks.Median(10, () => Loss(simd, out _, out _));
        rows.Add(("in-batch softmax 2048×2048 forward+backward, ms (GPU incl. copies / CPU)", $"{softmaxGpu * 1e3:F2} / {softmaxCpu * 1e3:F2}"));

        var x = Random(b * 44);
        var w = Random(44 * 16);
        var bias = Random(16);
        var (yg, ys) = (new float[b * 16], new float[b * 16]);
        gpu.DenseForward(x, b, 44, w, bias, 16, true, yg);
        simd.DenseForward(x, b, 44, w, bias, 16, true, ys);
        rows.Add(("dense forward 2048×44×16: max rel. diff", $"{MaxRel(yg, ys):E1}"));

        // 2. Notebook-scale training epoch and evaluation on both backends.
        var features = FeatureSet.From(config);
        var train = TrainingColumns.From(ColumnTable.ReadParquet(Path.Combine(store.StageDir("normalize"), "train.parquet")));
        var val = TrainingColumns.From(ColumnTable.ReadParquet(Path.Combine(store.StageDir("normalize"), "val.parquet")));
        var vocab = TrainStage.VocabularySizes(store, features);
        (EpochStats Stats, TwoTowerModel Model) Epoch(IKernels k)
        {
            var model = TwoTowerModel.Create(config, vocab);
            model.Initialize(config.Int("seed"));
            var trainer = new Trainer(model, k, TrainOptions.From(config), train, features.CandidateId);
            return (trainer.RunEpoch(1), model);
        }
        var (gpuEpoch, gpuModel) = Epoch(gpu);
        var (cpuEpoch, cpuModel) = Epoch(simd);
        rows.Add(($"epoch, notebook scale ({train.RowCount:N0} rows): s, rows/s GPU", $"{gpuEpoch.Seconds:F2}, {gpuEpoch.RowsPerSecond:N0}"));
        rows.Add(("epoch, notebook scale: s, rows/s CPU SIMD", $"{cpuEpoch.Seconds:F2}, {cpuEpoch.RowsPerSecond:N0}"));
        rows.Add(("epoch loss per example GPU / CPU", $"{gpuEpoch.LossPerExample:F5} / {cpuEpoch.LossPerExample:F5}"));
        var watch = Stopwatch.StartNew();
        var gpuRanks = EvaluateStage.ModelRanks(cpuModel, gpu, train, val, features, out var catalogue);
        var gpuEval = watch.Elapsed.TotalSeconds;
        watch.Restart();
        var cpuRanks = EvaluateStage.ModelRanks(cpuModel, simd, train, val, features, out _);
        var cpuEval = watch.Elapsed.TotalSeconds;
        rows.Add(($"evaluation {val.RowCount:N0} × {catalogue:N0}: s GPU / CPU; ranks equal", $"{gpuEval:F2} / {cpuEval:F2}; {gpuRanks.Zip(cpuRanks).Count(p => p.First == p.Second) * 100.0 / cpuRanks.Length:F3}% equal"));

        // 3. Rank counting at full H&M catalogue size on the GPU.
        const int queries = 1_000_000, candidates = 105_542;
        var bigQ = Random(queries * d);
        var bigC = Random(candidates * d);
        var positives = Random(queries * d);
        var counts = new int[queries];
        watch.Restart();
        gpu.CountScoresAbove(bigQ, queries, bigC, candidates, d, positives, counts);
        rows.Add(("rank counting 1M queries × 105,542 candidates × 16, s GPU (incl. copies)", $"{watch.Elapsed.TotalSeconds:F2}"));

        log.Info($"\n| GpuCheck ({gpu.Name}) | |\n|---|---|");
        foreach (var (what, value) in rows)
            log.Info($"| {what} | {value} |");
    }

    static double MaxRel(float[] a, float[] b) =>
        a.Zip(b).Max(p => Math.Abs(p.First - p.Second) / Math.Max(Math.Abs(p.Second), 1e-2));
}
