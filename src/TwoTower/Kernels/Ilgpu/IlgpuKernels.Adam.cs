using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>AdamW as kernels: the dense step, and the exact lazy step for embedding tables (replayed missed steps per row).</summary>
public sealed partial class IlgpuKernels
{
    public struct AdamConstants
    {
        public float Beta1, Beta2, Epsilon, DecayTouched, DecayUntouched, LrT;
    }

    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamConstants> AdamLauncher => Load(ref field, AdamKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AdamConstants, int, int> AdamRowsLauncher => Load(ref field, AdamRowsKernel);
    Action<Index1D, ArrayView<int>, ArrayView<int>, int> SetRowStepsLauncher => Load(ref field, SetRowStepsKernel);

    /// <summary>One Adam step on element i, the same operations in the same order as SimdKernels.AdamStep (a replayed step passes g = 0).</summary>
    static void Step(ref float w, ref float m, ref float v, float g, float lrT, float decay, AdamConstants k)
    {
        if (decay != 0)
            w -= decay * w;
        m = Flush(k.Beta1 * m + (1 - k.Beta1) * g);
        v = Flush(k.Beta2 * v + (1 - k.Beta2) * (g * g));
        w -= lrT * m / (MathF.Sqrt(v) + k.Epsilon);
    }

    static void AdamKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamConstants k)
    {
        float wi = w[i], mi = m[i], vi = v[i];
        Step(ref wi, ref mi, ref vi, g[i], k.LrT, k.DecayTouched, k);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }

    /// <summary>
    /// Element (u, d) of table row rows[u]: replays the zero-gradient steps rowStep[row]+1..(step − 1)
    /// (decay DecayUntouched), then, when withGradient is 1, step `step` with g (decay DecayTouched).
    /// rowStep is only read here; <see cref="SetRowStepsKernel"/> advances it afterwards (every thread of a row reads it).
    /// </summary>
    static void AdamRowsKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<int> rows,
        ArrayView<int> rowStep, ArrayView<float> lrT, AdamConstants k, int width, int stepAndFlag)
    {
        var step = stepAndFlag >> 1;
        var withGradient = (stepAndFlag & 1) == 1;
        var row = rows[i / width];
        var at = row * width + i % width;
        float wi = w[at], mi = m[at], vi = v[at];
        var last = withGradient ? step - 1 : step;
        for (var s = rowStep[row] + 1; s <= last; s++)
            Step(ref wi, ref mi, ref vi, 0f, lrT[s], k.DecayUntouched, k);
        if (withGradient)
            Step(ref wi, ref mi, ref vi, g[at], lrT[step], k.DecayTouched, k);
        w[at] = wi;
        m[at] = mi;
        v[at] = vi;
    }

    static void SetRowStepsKernel(Index1D u, ArrayView<int> rows, ArrayView<int> rowStep, int step) => rowStep[rows[u]] = step;

    public void AdamW(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, float lrT,
        float beta1, float beta2, float epsilon, float decay)
    {
        if (count > 0)
            AdamLauncher(count, V(w), V(g), V(m), V(v), new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decay, LrT = lrT });
    }

    void UpdateRows(DeviceBuffer<float> w, DeviceBuffer<float>? g, DeviceBuffer<float> m, DeviceBuffer<float> v, int width, DeviceBuffer<int> rows,
        DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, AdamConstants k)
    {
        if (rows.Length == 0)
            return;
        AdamRowsLauncher(rows.Length * width, V(w), Optional(g), V(m), V(v), V(rows), V(rowStep), V(lrTByStep), k, width, (step << 1) | (g == null ? 0 : 1));
        SetRowStepsLauncher(rows.Length, V(rows), V(rowStep), step);
    }

    public void AdamWRows(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth,
        DeviceBuffer<int> rows, DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2, float epsilon,
        float decayTouched, float decayUntouched) =>
        UpdateRows(w, g, m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decayTouched, DecayUntouched = decayUntouched });

    public void AdamWCatchUp(DeviceBuffer<float> w, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth, DeviceBuffer<int> rows,
        DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2, float epsilon, float decayUntouched) =>
        UpdateRows(w, null, m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayUntouched = decayUntouched });
}
