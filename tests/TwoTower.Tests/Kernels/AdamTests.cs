using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>The SIMD backend's AdamW: the dense step and the exact lazy row step. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdAdamTests
{
    const double Tolerance = 1e-4;

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
}

/// <summary>The ILGPU kernels for AdamW: the dense step and the exact lazy row step, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuAdamTests(IlgpuCpu ilgpu)
{
    const double Tolerance = 1e-4;
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

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
}
