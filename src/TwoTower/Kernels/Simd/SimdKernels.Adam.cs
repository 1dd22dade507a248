using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>AdamW: the dense step, and the exact lazy (row-replaying) step for embedding tables.</summary>
public sealed unsafe partial class SimdKernels
{
    public void AdamW(DeviceBuffer<float> wBuffer, DeviceBuffer<float> gBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer,
        int count, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        var w = S(wBuffer)[..count];
        var g = S(gBuffer)[..count];
        var m = S(mBuffer)[..count];
        var v = S(vBuffer)[..count];
        var length = count;
        fixed (float* pw = w, pg = g, pm = m, pv = v)
        {
            var (wp, gp, mp, vp) = ((nint)pw, (nint)pg, (nint)pm, (nint)pv);
            const int Block = 1 << 14;
            if (length < 4 * Block || threads == 1)
                AdamStep((float*)wp, (float*)gp, (float*)mp, (float*)vp, length, lrT, beta1, beta2, epsilon, decay);
            else
                Parallel.For(0, (length + Block - 1) / Block, new ParallelOptions { MaxDegreeOfParallelism = threads }, b =>
                {
                    var start = b * Block;
                    AdamStep((float*)wp + start, (float*)gp + start, (float*)mp + start, (float*)vp + start,
                        Math.Min(Block, length - start), lrT, beta1, beta2, epsilon, decay);
                });
        }
    }

    public void AdamWRows(DeviceBuffer<float> wBuffer, DeviceBuffer<float> gBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer,
        int rowWidth, DeviceBuffer<int> rowsBuffer, DeviceBuffer<int> rowStepBuffer, int step, DeviceBuffer<float> lrTByStepBuffer,
        float beta1, float beta2, float epsilon, float decayTouched, float decayUntouched)
    {
        var w = S(wBuffer);
        var g = S(gBuffer);
        var m = S(mBuffer);
        var v = S(vBuffer);
        var lrTByStep = S(lrTByStepBuffer);
        var rows = S(rowsBuffer);
        var rowStep = S(rowStepBuffer);
        fixed (float* pw = w, pg = g, pm = m, pv = v, plr = lrTByStep)
        fixed (int* pRows = rows, pStep = rowStep)
        {
            var (wp, gp, mp, vp, lrp, rp, sp) = ((nint)pw, (nint)pg, (nint)pm, (nint)pv, (nint)plr, (nint)pRows, (nint)pStep);
            var count = rows.Length;
            ForChunks(count, (first, end) =>
            {
                for (var i = first; i < end; i++)
                {
                    var row = ((int*)rp)[i];
                    var offset = (long)row * rowWidth;
                    var rw = (float*)wp + offset;
                    var rm = (float*)mp + offset;
                    var rv = (float*)vp + offset;
                    ref var last = ref ((int*)sp)[row];
                    Replay(rw, rm, rv, rowWidth, last + 1, step - 1, (float*)lrp, beta1, beta2, epsilon, decayUntouched);
                    AdamStep(rw, (float*)gp + offset, rm, rv, rowWidth, ((float*)lrp)[step], beta1, beta2, epsilon, decayTouched);
                    last = step;
                }
            });
        }
    }

    public void AdamWCatchUp(DeviceBuffer<float> wBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer, int rowWidth,
        DeviceBuffer<int> rowsBuffer, DeviceBuffer<int> rowStepBuffer, int step, DeviceBuffer<float> lrTByStepBuffer,
        float beta1, float beta2, float epsilon, float decayUntouched)
    {
        var w = S(wBuffer);
        var m = S(mBuffer);
        var v = S(vBuffer);
        var lrTByStep = S(lrTByStepBuffer);
        var rows = S(rowsBuffer);
        var rowStep = S(rowStepBuffer);
        fixed (float* pw = w, pm = m, pv = v, plr = lrTByStep)
        fixed (int* pRows = rows, pStep = rowStep)
        {
            var (wp, mp, vp, lrp, rp, sp) = ((nint)pw, (nint)pm, (nint)pv, (nint)plr, (nint)pRows, (nint)pStep);
            ForChunks(rows.Length, (first, end) =>
            {
                for (var i = first; i < end; i++)
                {
                    var row = ((int*)rp)[i];
                    var offset = (long)row * rowWidth;
                    ref var last = ref ((int*)sp)[row];
                    Replay((float*)wp + offset, (float*)mp + offset, (float*)vp + offset, rowWidth, last + 1, step, (float*)lrp,
                        beta1, beta2, epsilon, decayUntouched);
                    last = step;
                }
            });
        }
    }

    /// <summary>
    /// Subnormal floats flushed to zero, as TensorFlow's CPU kernels run (flush-to-zero mode). An
    /// untouched embedding row's momentum decays as 0.9^t and turns subnormal after ~850 steps;
    /// x86 arithmetic on subnormals is ~100× slower, which made full-scale epochs crawl.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FlushSubnormal(Vector256<float> x) =>
        Vector256.ConditionalSelect(Vector256.LessThan(Vector256.Abs(x), Vector256.Create(SmallestNormal)), Vector256<float>.Zero, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float FlushSubnormal(float x) => MathF.Abs(x) < SmallestNormal ? 0f : x;

    const float SmallestNormal = 1.17549435E-38f;

    /// <summary>
    /// Zero-gradient steps first..last (inclusive) on one row. For 16-wide rows the row stays in
    /// registers across steps; the operations per element are exactly <see cref="AdamStep"/>'s with
    /// g = 0 (including the + c·0 terms), so the result is bit-identical. A row untouched for more
    /// than ~800 steps has its momentum flushed to zero; from then on (without decay) only v changes,
    /// which the second loop does at a tenth of the cost (rarely seen customers spend most steps there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Replay(float* w, float* m, float* v, int width, int first, int last, float* lrT, float beta1, float beta2,
        float epsilon, float decay)
    {
        if (first > last)
            return;
        if (width != 16)
        {
            for (var s = first; s <= last; s++)
                AdamStep(w, null, m, v, width, lrT[s], beta1, beta2, epsilon, decay);
            return;
        }
        var (b1, b2) = (Vector256.Create(beta1), Vector256.Create(beta2));
        var gm = Vector256.Create(1 - beta1) * Vector256<float>.Zero;
        var gv = Vector256.Create(1 - beta2) * (Vector256<float>.Zero * Vector256<float>.Zero);
        var (eps, d) = (Vector256.Create(epsilon), Vector256.Create(decay));
        var (w0, w1, m0, m1, v0, v1) = (Vector256.Load(w), Vector256.Load(w + 8), Vector256.Load(m), Vector256.Load(m + 8), Vector256.Load(v), Vector256.Load(v + 8));
        var magnitude = Vector256.Create(0x7FFFFFFFu);
        var step = first;
        for (; step <= last; step++)
        {
            // Once the momentum has decayed to ±0 (flushed) and nothing decays w, a step leaves w and m
            // as they are (w − lr·0/(√v+ε) = w): only v moves, in the cheap loop below.
            if (decay == 0 && ((m0.AsUInt32() | m1.AsUInt32()) & magnitude) == Vector256<uint>.Zero)
                break;
            if (decay != 0)
            {
                w0 -= d * w0;
                w1 -= d * w1;
            }
            m0 = FlushSubnormal(b1 * m0 + gm);
            m1 = FlushSubnormal(b1 * m1 + gm);
            v0 = FlushSubnormal(b2 * v0 + gv);
            v1 = FlushSubnormal(b2 * v1 + gv);
            var lr = Vector256.Create(lrT[step]);
            w0 -= lr * m0 / (Vector256.Sqrt(v0) + eps);
            w1 -= lr * m1 / (Vector256.Sqrt(v1) + eps);
        }
        if (step <= last)
            (m0, m1) = (Vector256<float>.Zero, Vector256<float>.Zero);
        for (; step <= last && (v0.AsUInt32() | v1.AsUInt32()) != Vector256<uint>.Zero; step++)
        {
            v0 = FlushSubnormal(b2 * v0 + gv);
            v1 = FlushSubnormal(b2 * v1 + gv);
        }
        w0.Store(w);
        w1.Store(w + 8);
        m0.Store(m);
        m1.Store(m + 8);
        v0.Store(v);
        v1.Store(v + 8);
    }

    /// <summary>
    /// One Adam step on `count` consecutive elements (g null: a zero gradient), after w −= decay·w
    /// when decay is not 0. The vector and scalar paths do the same float operations in the same
    /// order, so where an element falls does not change its result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AdamStep(float* w, float* g, float* m, float* v, int count, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        if (decay != 0)
        {
            for (var i = 0; i < count; i++)
                w[i] -= decay * w[i];
        }
        var b1 = Vector256.Create(beta1);
        var b2 = Vector256.Create(beta2);
        var c1 = Vector256.Create(1 - beta1);
        var c2 = Vector256.Create(1 - beta2);
        var lr = Vector256.Create(lrT);
        var eps = Vector256.Create(epsilon);
        var k = 0;
        for (; k + 8 <= count; k += 8)
        {
            var gv = g == null ? Vector256<float>.Zero : Vector256.Load(g + k);
            var mv = FlushSubnormal(b1 * Vector256.Load(m + k) + c1 * gv);
            var vv = FlushSubnormal(b2 * Vector256.Load(v + k) + c2 * (gv * gv));
            mv.Store(m + k);
            vv.Store(v + k);
            (Vector256.Load(w + k) - lr * mv / (Vector256.Sqrt(vv) + eps)).Store(w + k);
        }
        for (; k < count; k++)
        {
            var gk = g == null ? 0f : g[k];
            var mk = FlushSubnormal(beta1 * m[k] + (1 - beta1) * gk);
            var vk = FlushSubnormal(beta2 * v[k] + (1 - beta2) * (gk * gk));
            m[k] = mk;
            v[k] = vk;
            w[k] -= lrT * mk / (MathF.Sqrt(vk) + epsilon);
        }
    }
}
