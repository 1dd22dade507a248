using TwoTower.Config;
using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using TwoTower.Kernels.Ilgpu;
using TwoTower.Kernels.Simd;
using TwoTower.Kernels;
using TwoTower.Model;

namespace TwoTower.Tests;

/// <summary>One ILGPU CPU-accelerator context for the whole class (context creation and kernel compiles are slow).</summary>
public sealed class IlgpuCpu : IDisposable
{
    public IlgpuKernels Kernels { get; } = Backend.CreateIlgpu("ilgpu-cpu", out _)!;
    public void Dispose() => Kernels.Dispose();
}

/// <summary>
/// Every ILGPU kernel on ILGPU's CPU accelerator at small sizes, against the float64 reference and
/// the SIMD backend on the same inputs, outputs poisoned first.
/// </summary>
public class IlgpuKernelTests(IlgpuCpu ilgpu) : IClassFixture<IlgpuCpu>
{
    const double Tolerance = 1e-4;
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

    [Theory]
    [InlineData(70, 19, 16)]
    [InlineData(256, 44, 16)]
    public void DenseForwardAndBackwardMatchReferenceAndSimd(int rows, int inDim, int outDim)
    {
        var x = Reference.Random(rows * inDim, 1);
        var w = Reference.Random(inDim * outDim, 2);
        var b = Reference.Random(outDim, 3);
        var (y, ys) = (Reference.Poisoned(rows * outDim), Reference.Poisoned(rows * outDim));
        gpu.DenseForward(x, rows, inDim, w, b, outDim, true, y);
        simd.DenseForward(x, rows, inDim, w, b, outDim, true, ys);
        Assert.True(Reference.MaxRelativeError(y, Reference.DenseForward(x, rows, inDim, w, b, outDim, true)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(y, Reference.ToDouble(ys)) < Tolerance);

        var dy = Reference.Random(rows * outDim, 4);
        var (dw, db, dx) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        var (dws, dbs, dxs) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        gpu.DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        simd.DenseBackward(x, rows, inDim, w, outDim, dy, dws, dbs, dxs);
        var expected = Reference.DenseBackward(x, rows, inDim, w, outDim, dy);
        Assert.True(Reference.MaxRelativeError(dw, expected.Dw) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, expected.Db) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, expected.Dx) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dw, Reference.ToDouble(dws)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, Reference.ToDouble(dbs)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, Reference.ToDouble(dxs)) < Tolerance);

        float[] ry = [1, 0, -2, 3];
        float[] rdy = [5, 6, 7, 8];
        gpu.ReluBackward(ry, rdy);
        Assert.Equal([5f, 0, 0, 8], rdy);
    }

    [Fact]
    public void EmbeddingGatherAndDeterministicRowGradientsMatchSimd()
    {
        const int dim = 16, stride = 21, offset = 3, rows = 100, tableRows = 30;
        var table = Reference.Random(tableRows * dim, 5);
        var column = Enumerable.Range(0, 3 * rows).Select(i => i * 7 % tableRows).ToArray();
        var batchRows = Enumerable.Range(0, rows).Select(i => i * 31 % column.Length).ToArray();
        var ids = batchRows.Select(r => column[r]).ToArray();
        var (xg, xs) = (Reference.Poisoned(rows * stride), Reference.Poisoned(rows * stride));
        gpu.EmbeddingGather(table, dim, column, batchRows, xg, stride, offset);
        simd.EmbeddingGather(table, dim, column, batchRows, xs, stride, offset);
        for (var r = 0; r < rows; r++)
            Assert.Equal(xs.AsSpan(r * stride + offset, dim).ToArray(), xg.AsSpan(r * stride + offset, dim).ToArray());

        var dx = Reference.Random(rows * stride, 6);
        var (gg, gs) = (Reference.Poisoned(tableRows * dim), Reference.Poisoned(tableRows * dim));
        gpu.EmbeddingRowGradients(dx, stride, offset, dim, ids, gg);
        simd.EmbeddingRowGradients(dx, stride, offset, dim, ids, gs);
        Assert.Equal(gs, gg);  // same additions in the same (batch) order; the same rows left unwritten
    }

    [Fact]
    public void BatchAssemblyOpsMatchSimd()
    {
        var column = Enumerable.Range(0, 500).Select(i => i * 31 % 17).ToArray();
        var values = Reference.Random(500, 12);
        var rows = Enumerable.Range(0, 90).Select(i => i * 53 % 500).ToArray();
        var (ig, isimd) = (Enumerable.Repeat(-1, 90).ToArray(), Enumerable.Repeat(-1, 90).ToArray());
        gpu.GatherRows(column, rows, ig);
        simd.GatherRows(column, rows, isimd);
        Assert.Equal(isimd, ig);
        var (fg, fs) = (Reference.Poisoned(90), Reference.Poisoned(90));
        gpu.GatherRows(values, rows, fg);
        simd.GatherRows(values, rows, fs);
        Assert.Equal(fs, fg);

        const int stride = 23, depth = 16;
        var (xg, xs) = (Reference.Poisoned(90 * stride), Reference.Poisoned(90 * stride));
        gpu.OneHot(column, rows, depth, xg, stride, 2);
        simd.OneHot(column, rows, depth, xs, stride, 2);
        gpu.CopyToColumn(values, rows, xg, stride, 20);
        simd.CopyToColumn(values, rows, xs, stride, 20);
        Assert.Equal(xs, xg);   // NaN where neither wrote
    }

    [Theory]
    [InlineData(64, 16, false, 1.0, false)]
    [InlineData(130, 16, true, 0.5, true)]
    [InlineData(37, 5, true, 2.0, false)]
    public void InBatchSoftmaxMatchesReference(int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        KernelTests.CheckInBatchSoftmax(ilgpu.Kernels, rows, dim, logQ, temperature, accidentalHits);

    /// <summary>64 rows in chunks of 2 columns, items shared by runs of 4 rows: some chunks are entirely −∞.</summary>
    [Fact]
    public void InBatchSoftmaxWithWholeChunksMaskedMatchesReference() =>
        KernelTests.CheckInBatchSoftmax(ilgpu.Kernels, 64, 16, true, 1.0, true, sameItemRun: 4);

    [Fact]
    public void AdamWDenseAndLazyRowsMatchSimdBitForBit()
    {
        const int rows = 40, cols = 16, steps = 6;
        var lrT = Enumerable.Range(0, steps + 1).Select(s => 0.01f * (1 + s % 3)).ToArray();
        var w0 = Reference.Random(rows * cols, 30);
        var (wg, mg, vg) = (w0.ToArray(), new float[rows * cols], new float[rows * cols]);
        var (ws, ms, vs) = (w0.ToArray(), new float[rows * cols], new float[rows * cols]);
        var (sg, ss) = (new int[rows], new int[rows]);
        var rng = new Rng(31);
        for (var step = 1; step <= steps; step++)
        {
            var touched = Enumerable.Range(0, rows).Where(_ => rng.NextDouble() < 0.3).ToArray();
            var g = Reference.Random(rows * cols, 100 + step);
            gpu.AdamWCatchUp(wg, mg, vg, cols, touched, sg, step - 1, lrT, 0.9f, 0.999f, 1e-7f, 1e-5f);
            simd.AdamWCatchUp(ws, ms, vs, cols, touched, ss, step - 1, lrT, 0.9f, 0.999f, 1e-7f, 1e-5f);
            gpu.AdamWRows(wg, g, mg, vg, cols, touched, sg, step, lrT, 0.9f, 0.999f, 1e-7f, 1e-3f, 1e-5f);
            simd.AdamWRows(ws, g, ms, vs, cols, touched, ss, step, lrT, 0.9f, 0.999f, 1e-7f, 1e-3f, 1e-5f);
        }
        var all = Enumerable.Range(0, rows).ToArray();
        gpu.AdamWCatchUp(wg, mg, vg, cols, all, sg, steps, lrT, 0.9f, 0.999f, 1e-7f, 1e-5f);
        simd.AdamWCatchUp(ws, ms, vs, cols, all, ss, steps, lrT, 0.9f, 0.999f, 1e-7f, 1e-5f);
        Assert.Equal(ss, sg);
        Assert.True(Reference.MaxRelativeError(wg, Reference.ToDouble(ws)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(mg, Reference.ToDouble(ms)) < Tolerance);

        var (w1, w2) = (w0.ToArray(), w0.ToArray());
        var (m1, m2, v1, v2) = (new float[w0.Length], new float[w0.Length], new float[w0.Length], new float[w0.Length]);
        var grad = Reference.Random(w0.Length, 40);
        gpu.AdamW(w1, grad, m1, v1, 0.01f, 0.9f, 0.999f, 1e-7f, 0.001f);
        simd.AdamW(w2, grad, m2, v2, 0.01f, 0.9f, 0.999f, 1e-7f, 0.001f);
        Assert.True(Reference.MaxRelativeError(w1, Reference.ToDouble(w2)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(v1, Reference.ToDouble(v2), floor: 1e-6) < Tolerance);
    }

    [Fact]
    public void RankCountingMatchesSimdWithExactTiesAndNaN()
    {
        const int queries = 50, candidates = 3000, dim = 16;
        var q = Reference.Random(queries * dim, 21);
        var c = Reference.Random(candidates * dim, 22).Select(v => MathF.Round(v * 2) / 2).ToArray();
        var arbitrary = Reference.Random(queries * dim, 23);
        var positives = new float[queries * dim];
        for (var i = 0; i < queries; i++)
            (i % 2 == 0 ? c.AsSpan(i * dim, dim) : arbitrary.AsSpan(i * dim, dim)).CopyTo(positives.AsSpan(i * dim, dim));
        positives[^1] = float.NaN;
        var (cg, cs) = (Enumerable.Repeat(-2, queries).ToArray(), Enumerable.Repeat(-2, queries).ToArray());
        gpu.CountScoresAbove(q, queries, c, candidates, dim, positives, cg);
        simd.CountScoresAbove(q, queries, c, candidates, dim, positives, cs);
        // The backends may round a dot product differently (fused or not), so near-ties can differ by one;
        // the positive's own copy must tie in each.
        for (var i = 0; i < queries; i++)
            Assert.InRange(cg[i], cs[i] - 1, cs[i] + 1);
        Assert.Equal(-1, cg[^1]);
        var exactCopies = Enumerable.Range(0, queries / 2).Select(k => 2 * k).Where(i => i < queries - 1);
        foreach (var i in exactCopies)
        {
            var copyScore = Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[i * dim + d]);
            var strictlyAbove = Enumerable.Range(0, candidates).Count(j => Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]) > copyScore + 1e-5);
            var tied = Enumerable.Range(0, candidates).Count(j => Math.Abs(Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]) - copyScore) <= 1e-5);
            Assert.InRange(cg[i], strictlyAbove, strictlyAbove + tied - 1);
        }
    }

    [Fact]
    public void ShortTrainingOnIlgpuCpuEndsWithinToleranceOfTheSimdRun()
    {
        var config = TrainingTests.Config("train.batch_size=64");
        var data = TrainingTests.TinyData(320, seed: 11);
        float[] Train(IKernels kernels, out double loss)
        {
            var model = TwoTowerModel.Create(config, TrainingTests.TinyVocabulary);
            model.Initialize(config.Get(ConfigSchema.Seed));
            using var trainer = new Trainer(model, kernels, TrainOptions.From(config), data, "article_id");
            trainer.RunEpoch(1);
            loss = trainer.RunEpoch(2).LossPerExample;   // a second epoch: learning rates appended on the device, batches reshuffled, host copies refreshed
            return model.Variables.SelectMany(v => v.Value).ToArray();
        }
        var onGpu = Train(ilgpu.Kernels, out var gpuLoss);
        var onCpu = Train(new SimdKernels(2), out var cpuLoss);
        Assert.Equal(cpuLoss, gpuLoss, cpuLoss * 1e-4);
        // Adam moves each weight by about ±lr per step whatever the gradient's size, so a gradient near
        // zero whose last bits differ can flip one step: a few weights differ by up to a few lr, the rest agree.
        var diffs = onGpu.Zip(onCpu).Select(p => Math.Abs(p.First - p.Second)).Order().ToArray();
        Assert.True(diffs[(int)(diffs.Length * 0.99)] < 2e-3, $"99th percentile difference {diffs[(int)(diffs.Length * 0.99)]}");
        Assert.True(diffs[^1] < 3 * 0.01, $"largest difference {diffs[^1]}");
    }

    [Fact]
    public void TopKEqualsSimdAndBruteForce()
    {
        const int queries = 9, candidates = 3000, dim = 16, k = 50;
        var (q, c) = KernelTests.GridInputs(queries, candidates, dim);
        c.AsSpan(5 * dim, dim).CopyTo(c.AsSpan(600 * dim, dim));
        c[100 * dim] = float.NaN;
        var (ig, sg) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        var (isimd, ssimd) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        gpu.TopK(q, queries, c, candidates, dim, k, ig, sg);
        simd.TopK(q, queries, c, candidates, dim, k, isimd, ssimd);
        Assert.Equal(isimd, ig);
        Assert.Equal(ssimd, sg);
        for (var i = 0; i < queries; i++)
            Assert.Equal(KernelTests.BruteForceTopK(q, i, c, candidates, dim, k), ig.AsSpan(i * k, k).ToArray());
    }

    /// <summary>
    /// Every kernel compiles for the GPUs no CI machine has: PTX for Hopper (H100/H200) and OpenCL C.
    /// An unsupported intrinsic (MathF.Log without ILGPU.Algorithms cost a device run once) fails here.
    /// </summary>
    [Fact]
    public void EveryKernelCompilesToPtxForHopperAndToOpenCl()
    {
        var kernels = typeof(IlgpuKernels).GetMethods(BindingFlags.NonPublic | BindingFlags.Static).Where(m => m.Name.EndsWith("Kernel")).ToArray();
        Assert.True(kernels.Length >= 20, $"{kernels.Length} kernels found");
        using var context = Context.Create(b => b.Cuda().OpenCL().EnableAlgorithms());
        using var ptx = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        using var openCl = new CLBackend(context, new CLCapabilityContext(false, true, true, true, true), CLDeviceVendor.Nvidia, CLCVersion.CL20);
        foreach (var kernel in kernels)
        {
            var entry = EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
            var compiled = (PTXCompiledKernel)ptx.Compile(entry, default);
            Assert.Contains(".entry", compiled.PTXAssembly);
            var source = (CLCompiledKernel)openCl.Compile(entry, default);
            Assert.Contains("kernel", source.Source);
        }
    }
}
