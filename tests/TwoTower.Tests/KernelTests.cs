using System.Runtime.Intrinsics;
using TwoTower.Kernels.Simd;
using TwoTower.Kernels;

namespace TwoTower.Tests;

/// <summary>Each op of the SIMD backend against the float64 reference, outputs poisoned first.</summary>
public class KernelTests
{
    const double Tolerance = 1e-4;

    [Theory]
    [InlineData(1, 37, 19, 16, true)]
    [InlineData(2, 64, 44, 16, false)]
    [InlineData(2, 5, 7, 3, true)]
    public void DenseForwardMatchesReference(int threads, int rows, int inDim, int outDim, bool relu)
    {
        var x = Reference.Random(rows * inDim, 1);
        var w = Reference.Random(inDim * outDim, 2);
        var b = Reference.Random(outDim, 3);
        var y = Reference.Poisoned(rows * outDim);
        new ArrayOps(new SimdKernels(threads)).DenseForward(x, rows, inDim, w, b, outDim, relu, y);
        Assert.True(Reference.MaxRelativeError(y, Reference.DenseForward(x, rows, inDim, w, b, outDim, relu)) < Tolerance);
    }

    [Theory]
    [InlineData(37, 19, 16)]
    [InlineData(5, 7, 3)]
    public void DenseBackwardMatchesReference(int rows, int inDim, int outDim)
    {
        var x = Reference.Random(rows * inDim, 4);
        var w = Reference.Random(inDim * outDim, 5);
        var dy = Reference.Random(rows * outDim, 6);
        var (dw, db, dx) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        new ArrayOps(new SimdKernels(2)).DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        var expected = Reference.DenseBackward(x, rows, inDim, w, outDim, dy);
        Assert.True(Reference.MaxRelativeError(dw, expected.Dw) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, expected.Db) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, expected.Dx) < Tolerance);
    }

    /// <summary>
    /// The 16-wide path does, per output, the fused multiply-adds of the general path in the same
    /// order (inputs ascending, zero inputs skipped; rows ascending for dw and db): equal bit for bit
    /// to that chain written as scalar FMAs.
    /// </summary>
    [Fact]
    public void SixteenWideDenseLayersEqualTheScalarFusedMultiplyAddChain()
    {
        const int rows = 130, inDim = 44, outDim = 16;
        var x = Reference.Random(rows * inDim, 51).Select((v, i) => i % 3 == 0 ? 0f : v).ToArray();   // zero inputs are skipped
        var w = Reference.Random(inDim * outDim, 52);
        var b = Reference.Random(outDim, 53);
        var dy = Reference.Random(rows * outDim, 54);
        var (y, dw, db, dx) = (Reference.Poisoned(rows * outDim), Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        var ops = new ArrayOps(new SimdKernels(2));
        ops.DenseForward(x, rows, inDim, w, b, outDim, false, y);
        ops.DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            var s = b[o];
            for (var k = 0; k < inDim; k++)
                s = x[r * inDim + k] == 0 ? s : MathF.FusedMultiplyAdd(x[r * inDim + k], w[k * outDim + o], s);
            Assert.Equal(s, y[r * outDim + o]);
        }
        for (var k = 0; k <= inDim; k++)
        for (var o = 0; o < outDim; o++)
        {
            var s = 0f;
            for (var r = 0; r < rows; r++)
            {
                var xk = k == inDim ? 1f : x[r * inDim + k];
                s = xk == 0 ? s : MathF.FusedMultiplyAdd(xk, dy[r * outDim + o], s);
            }
            Assert.Equal(s, k == inDim ? db[o] : dw[k * outDim + o]);
        }
    }

    [Fact]
    public void ReluBackwardZeroesWhereOutputIsNotPositive()
    {
        float[] y = [1, 0, -2, 3];
        float[] dy = [5, 6, 7, 8];
        new ArrayOps(new SimdKernels(1)).ReluBackward(y, dy);
        Assert.Equal([5, 0, 0, 8], dy);
    }

    [Fact]
    public void EmbeddingGatherAndRowGradientsMatchHandComputedRows()
    {
        const int dim = 3, stride = 5, offset = 1;
        var table = Enumerable.Range(0, 4 * dim).Select(i => (float)i).ToArray();
        int[] column = [9, 2, 0, 1];
        int[] rows = [1, 2, 1];   // ids 2, 0, 2
        int[] ids = rows.Select(r => column[r]).ToArray();
        var x = Reference.Poisoned(rows.Length * stride);
        var kernels = new ArrayOps(new SimdKernels(1));
        kernels.EmbeddingGather(table, dim, column, rows, x, stride, offset);
        Assert.Equal([6f, 7, 8], x.AsSpan(1, 3).ToArray());
        Assert.Equal([0f, 1, 2], x.AsSpan(6, 3).ToArray());
        Assert.Equal([6f, 7, 8], x.AsSpan(11, 3).ToArray());

        var grad = Reference.Poisoned(4 * dim);
        var dx = Enumerable.Range(0, ids.Length * stride).Select(i => (float)i).ToArray();
        kernels.EmbeddingRowGradients(dx, stride, offset, dim, ids, grad);
        // Row 2 gets rows 0 and 2 of dx (repeated ids accumulate), row 0 gets row 1; rows 1 and 3 are not written.
        Assert.Equal([1f + 11, 2 + 12, 3 + 13], grad.AsSpan(6, 3).ToArray());
        Assert.Equal([6f, 7, 8], grad.AsSpan(0, 3).ToArray());
        Assert.All(grad.AsSpan(3, 3).ToArray().Concat(grad.AsSpan(9, 3).ToArray()), g => Assert.True(float.IsNaN(g)));
    }

    [Fact]
    public void BatchAssemblyOpsMatchHandComputedRows()
    {
        var ops = new ArrayOps(new SimdKernels(1));
        var ints = Enumerable.Repeat(-1, 3).ToArray();
        ops.GatherRows([10, 11, 12, 13], [3, 0, 3], ints);
        Assert.Equal([13, 10, 13], ints);
        var floats = Reference.Poisoned(2);
        ops.GatherRows([0.5f, 1.5f], [1, 0], floats);
        Assert.Equal([1.5f, 0.5f], floats);

        const int stride = 5;
        var x = Reference.Poisoned(3 * stride);
        ops.OneHot([3, 0, 2, 1], [2, 1, 0], depth: 3, x, stride, offset: 1);   // ids 2, 0, 3; id 3 ≥ depth: all zeros (the notebook's depth)
        Assert.Equal([0f, 0, 1], x.AsSpan(1, 3).ToArray());
        Assert.Equal([1f, 0, 0], x.AsSpan(6, 3).ToArray());
        Assert.Equal([0f, 0, 0], x.AsSpan(11, 3).ToArray());
        ops.CopyToColumn([9f, 8, 7], [2, 1, 0], x, stride, offset: 4);
        Assert.Equal([7f, 8, 9], new[] { x[4], x[9], x[14] });
        Assert.True(float.IsNaN(x[0]));   // columns outside the written slices untouched
    }

    [Theory]
    [InlineData(1, 64, 16, false, 1.0, false)]
    [InlineData(2, 256, 16, true, 1.0, false)]
    [InlineData(2, 37, 16, true, 0.5, true)]
    [InlineData(2, 30, 5, false, 2.0, true)]
    [InlineData(3, 130, 16, true, 1.0, true)]
    public void InBatchSoftmaxMatchesReference(int threads, int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        CheckInBatchSoftmax(new SimdKernels(threads), rows, dim, logQ, temperature, accidentalHits);

    /// <summary>One backend's in-batch softmax against the float64 reference on fresh inputs, outputs poisoned first.</summary>
    /// <param name="sameItemRun">0: item ids i mod 7; n: runs of n consecutive rows share an item (whole column chunks masked).</param>
    internal static void CheckInBatchSoftmax(IKernels backend, int rows, int dim, bool logQ, double temperature, bool accidentalHits, int sameItemRun = 0)
    {
        var kernels = new ArrayOps(backend);
        var q = Reference.Random(rows * dim, 7, 0.8);
        var c = Reference.Random(rows * dim, 8, 0.8);
        var offset = logQ ? Reference.Random(rows, 9, 3).Select(v => v - 4).ToArray() : null;
        var ids = accidentalHits ? Enumerable.Range(0, rows).Select(i => sameItemRun > 0 ? i / sameItemRun : i % 7).ToArray() : null;
        var (loss, dq, dc) = (Reference.Poisoned(rows), Reference.Poisoned(rows * dim), Reference.Poisoned(rows * dim));
        kernels.InBatchSoftmax(q, c, rows, dim, offset, (float)temperature, ids, loss, dq, dc);
        var expected = Reference.InBatchSoftmax(Reference.ToDouble(q), Reference.ToDouble(c), rows, dim,
            offset == null ? null : Reference.ToDouble(offset), temperature, ids);
        Assert.True(Reference.MaxRelativeError(loss, expected.Loss) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dq, expected.Dq) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dc, expected.Dc) < Tolerance);
        if (backend is SimdKernels)
            return;
        // Another backend also against the SIMD one on the same inputs.
        var (simdLoss, simdDq, simdDc) = (Reference.Poisoned(rows), Reference.Poisoned(rows * dim), Reference.Poisoned(rows * dim));
        new ArrayOps(new SimdKernels(2)).InBatchSoftmax(q, c, rows, dim, offset, (float)temperature, ids, simdLoss, simdDq, simdDc);
        Assert.True(Reference.MaxRelativeError(loss, Reference.ToDouble(simdLoss)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dq, Reference.ToDouble(simdDq)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dc, Reference.ToDouble(simdDc)) < Tolerance);
    }

    [Fact]
    public void InBatchSoftmaxLossAtZeroEmbeddingsIsLogBatchSize()
    {
        const int rows = 2048, dim = 16;
        var loss = Reference.Poisoned(rows);
        new ArrayOps(new SimdKernels(2)).InBatchSoftmax(new float[rows * dim], new float[rows * dim], rows, dim, null, 1, null, loss,
            new float[rows * dim], new float[rows * dim]);
        Assert.All(loss, l => Assert.Equal(Math.Log(rows), l, 4));
    }

    [Fact]
    public void FastExpMatchesMathExp()
    {
        double worst = 0;
        for (var x = -87.0; x <= 0; x += 0.001)
        {
            var actual = SimdKernels.FastExp(Vector256.Create((float)x))[0];
            var expected = Math.Exp((float)x);
            worst = Math.Max(worst, Math.Abs(actual - expected) / expected);
        }
        Assert.True(worst < 1e-6, $"relative error {worst}");
        Assert.Equal(0f, SimdKernels.FastExp(Vector256.Create(float.NegativeInfinity))[0]);
        Assert.Equal(0f, SimdKernels.FastExp(Vector256.Create(-100f))[0]);
    }

    [Fact]
    public void AdamWMatchesReference()
    {
        const int rows = 50, cols = 16;
        var w = Reference.Random(rows * cols, 10);
        var g = Reference.Random(rows * cols, 11);
        var m = Reference.Random(rows * cols, 12, 0.1);
        var v = Reference.Random(rows * cols, 13, 0.1).Select(Math.Abs).ToArray();
        var (w0, m0, v0) = (w.ToArray(), m.ToArray(), v.ToArray());
        const float lrT = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f, decay = 0.001f;
        new ArrayOps(new SimdKernels(2)).AdamW(w, g, m, v, lrT, b1, b2, eps, decay);

        var (ew, em, ev) = (new double[w.Length], new double[w.Length], new double[w.Length]);
        for (var i = 0; i < w.Length; i++)
        {
            var wi = w0[i] - decay * (double)w0[i];
            em[i] = b1 * (double)m0[i] + (1 - (double)b1) * g[i];
            ev[i] = b2 * (double)v0[i] + (1 - (double)b2) * g[i] * (double)g[i];
            ew[i] = wi - lrT * em[i] / (Math.Sqrt(ev[i]) + eps);
        }
        Assert.True(Reference.MaxRelativeError(m, em) < Tolerance);
        Assert.True(Reference.MaxRelativeError(v, ev, floor: 1e-6) < Tolerance);
        Assert.True(Reference.MaxRelativeError(w, ew) < Tolerance);
    }

    [Fact]
    public void AdamWFlushesSubnormalMomentsToZeroAsTensorFlowOnCpu()
    {
        float[] w = [1f, 1f, 1f, 1f, 1f, 1f, 1f, 1f, 1f];
        float[] m = [1.2e-38f, 1e-30f, 0, 0, 0, 0, 0, 0, 1.2e-38f];  // 0.9 × 1.2e-38 is subnormal
        float[] v = [1.2e-38f, 1e-30f, 1, 1, 1, 1, 1, 1, 1.2e-38f];
        new ArrayOps(new SimdKernels(1)).AdamW(w, new float[9], m, v, 0.01f, 0.9f, 0.5f, 1e-7f, 0);
        Assert.Equal(0f, m[0]);
        Assert.Equal(0f, v[0]);
        Assert.Equal(0f, m[8]);      // the scalar tail flushes too
        Assert.Equal(0.9e-30f, m[1], 1e-36f);
        Assert.All(w, x => Assert.True(float.IsFinite(x)));
    }

    /// <summary>
    /// Lazy row updates plus a final catch-up equal, bit for bit, the dense update of every row every
    /// step (zero gradient where untouched), written here as plain float32 loops with the backend's
    /// flush-to-zero. With tiny starting moments, momentum flushes to zero mid-replay (the replay's
    /// v-only path from then on).
    /// </summary>
    [Theory]
    [InlineData(16, false, 7, false)]
    [InlineData(16, true, 7, false)]
    [InlineData(12, true, 7, false)]
    [InlineData(16, false, 60, true)]
    public void LazyRowAdamWEqualsDenseStepsBitForBit(int cols, bool decayUntouchedRows, int steps, bool tinyMoments)
    {
        const int rows = 40;
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-7f, decayTouched = 0.001f;
        var decayUntouched = decayUntouchedRows ? 1e-5f : 0f;
        var lrT = Enumerable.Range(0, steps + 1).Select(s => 0.01f * (1 + s % 3)).ToArray();
        var w = Reference.Random(rows * cols, 30);
        var (m, v) = tinyMoments
            ? (Reference.Random(rows * cols, 32).Select(x => x * 1e-36f).ToArray(), Reference.Random(rows * cols, 33).Select(x => MathF.Abs(x) * 1e-30f).ToArray())
            : (new float[rows * cols], new float[rows * cols]);
        var (dw, dm, dv) = (w.ToArray(), m.ToArray(), v.ToArray());
        static float Flush(float x) => MathF.Abs(x) < 1.17549435E-38f ? 0f : x;
        var rowStep = new int[rows];
        var rng = new Rng(31);
        var kernels = new ArrayOps(new SimdKernels(2));
        for (var step = 1; step <= steps; step++)
        {
            var touched = Enumerable.Range(0, rows).Where(_ => rng.NextDouble() < (tinyMoments ? 0.03 : 0.3)).ToArray();
            var g = new float[rows * cols];
            foreach (var r in touched)
                Reference.Random(cols, 100 * step + r).CopyTo(g, r * cols);
            if (step % 2 == 0)
                kernels.AdamWCatchUp(w, m, v, cols, touched, rowStep, step - 1, lrT, b1, b2, eps, decayUntouched);
            kernels.AdamWRows(w, g, m, v, cols, touched, rowStep, step, lrT, b1, b2, eps, decayTouched, decayUntouched);
            for (var i = 0; i < dw.Length; i++)
            {
                var decay = touched.Contains(i / cols) ? decayTouched : decayUntouched;
                if (decay != 0)
                    dw[i] -= decay * dw[i];
                var mi = Flush(b1 * dm[i] + (1 - b1) * g[i]);
                var vi = Flush(b2 * dv[i] + (1 - b2) * (g[i] * g[i]));
                dm[i] = mi;
                dv[i] = vi;
                dw[i] -= lrT[step] * mi / (MathF.Sqrt(vi) + eps);
            }
        }
        kernels.AdamWCatchUp(w, m, v, cols, Enumerable.Range(0, rows).ToArray(), rowStep, steps, lrT, b1, b2, eps, decayUntouched);
        Assert.Equal(dw, w);
        Assert.Equal(dm, m);
        Assert.Equal(dv, v);
        Assert.All(rowStep, s => Assert.Equal(steps, s));
    }

    /// <summary>
    /// Inputs on a coarse grid (multiples of 1/2 and 1/4, small sums): every dot product is exact in
    /// float32 however it is rounded, so exact ties are frequent and the expected order is certain.
    /// </summary>
    internal static (float[] Q, float[] C) GridInputs(int queries, int candidates, int dim)
    {
        var q = Reference.Random(queries * dim, 41).Select(v => MathF.Round(v * 4) / 4).ToArray();
        var c = Reference.Random(candidates * dim, 42).Select(v => MathF.Round(v * 2) / 2).ToArray();
        return (q, c);
    }

    /// <summary>Brute force: every candidate's float64 score, sorted best first, ties to the lower index; NaN as −∞.</summary>
    internal static int[] BruteForceTopK(float[] q, int i, float[] c, int candidates, int dim, int k) =>
        Enumerable.Range(0, candidates)
            .Select(j => (Score: Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]), Index: j))
            .Select(x => double.IsNaN(x.Score) ? (double.NegativeInfinity, x.Index) : x)
            .OrderByDescending(x => x.Item1).ThenBy(x => x.Item2).Take(k).Select(x => x.Item2).ToArray();

    [Theory]
    [InlineData(1, 1, 30, 30)]
    [InlineData(2, 7, 500, 100)]
    [InlineData(2, 3, 64, 1)]
    public void TopKEqualsBruteForceSortWithTiesToTheLowerIndex(int threads, int queries, int candidates, int k)
    {
        const int dim = 16;
        var (q, c) = GridInputs(queries, candidates, dim);
        c.AsSpan(3 * dim, dim).CopyTo(c.AsSpan(candidates / 2 * dim, dim));   // an exact duplicate: the tie goes to index 3
        if (candidates > 40)
            c[40 * dim] = float.NaN;                                           // a NaN score ranks last
        var (indices, scores) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        new ArrayOps(new SimdKernels(threads)).TopK(q, queries, c, candidates, dim, k, indices, scores);
        for (var i = 0; i < queries; i++)
        {
            Assert.Equal(BruteForceTopK(q, i, c, candidates, dim, k), indices.AsSpan(i * k, k).ToArray());
            for (var r = 0; r < k; r++)
            {
                var expected = SimdKernels.ScoreDot(q.AsSpan(i * dim, dim), c.AsSpan(indices[i * k + r] * dim, dim));
                Assert.Equal(float.IsNaN(expected) ? float.NegativeInfinity : expected, scores[i * k + r]);
            }
        }
    }

    /// <summary>Row groups against a plain dictionary grouping, over several batches through one instance (the hash table is reused).</summary>
    [Fact]
    public void RowGroupsListEachDistinctIdWithItsPositionsInBatchOrder()
    {
        var kernels = new SimdKernels(1);
        using var groups = new RowGroups(kernels, 300);
        var rng = new Rng(8);
        var column = Enumerable.Range(0, 5000).Select(_ => (int)(rng.NextDouble() * 120) * 9973).ToArray();   // repeats, large ids
        foreach (var (start, n) in new[] { (0, 300), (1000, 17), (4000, 300), (0, 0), (2500, 1) })
        {
            var batchRows = Enumerable.Range(start, n).ToArray();
            groups.Build(column, batchRows);
            groups.Upload();
            var expected = batchRows.Select((row, p) => (Id: column[row], Position: p)).GroupBy(x => x.Id)
                .Select(g => (g.Key, g.Select(x => x.Position).ToArray())).ToArray();   // first-appearance order, positions ascending
            var (rows, starts, positions) = (new int[groups.Count], new int[groups.Count + 1], new int[n]);
            kernels.CopyToHost(groups.Rows, rows);
            kernels.CopyToHost(groups.Starts, starts);
            kernels.CopyToHost(groups.Positions, positions);
            Assert.Equal(expected.Select(e => e.Key), rows);
            for (var u = 0; u < rows.Length; u++)
                Assert.Equal(expected[u].Item2, positions[starts[u]..starts[u + 1]]);
        }
    }
}
