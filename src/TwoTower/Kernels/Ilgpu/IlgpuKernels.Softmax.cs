using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>The in-batch softmax as kernels: logits, per-chunk max/sum, per-row loss, gradient, dq and dc.</summary>
public sealed partial class IlgpuKernels
{
    // The logits matrix is stored column-major, element (i, j) at l[j·rows + i], and the row-wise
    // softmax runs in three parallel phases over (chunk of columns, row) with the row index fastest:
    // the threads of a warp then read adjacent addresses, and a batch of 2048 rows gives 64k threads
    // instead of 2048 serial row walks.
    const int SoftmaxChunks = 32;

    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, float, int> LogitsLauncher => Load(ref field, LogitsKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> ChunkMaxSumLauncher => Load(ref field, ChunkMaxSumKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> RowLossLauncher => Load(ref field, RowLossKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, float> SoftmaxGradientLauncher => Load(ref field, SoftmaxGradientKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> GradQueryLauncher => Load(ref field, GradQueryKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> GradCandidateLauncher => Load(ref field, GradCandidateKernel);
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int> AddRepeatBiasLauncher => Load(ref field, AddRepeatBiasKernel);
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, float> RepeatBiasGradientLauncher => Load(ref field, RepeatBiasGradientKernel);

    /// <summary>l(i,j) = (q_i·c_j)/τ − offset_j; −∞ for an accidental hit (flags: 1 = offset given, 2 = ids given).</summary>
    static void LogitsKernel(Index1D index, ArrayView<float> q, ArrayView<float> c, ArrayView<float> offset, ArrayView<int> ids,
        ArrayView<float> l, int rows, int dim, float invTemperature, int flags)
    {
        var j = index / rows;
        var i = index % rows;
        var s = 0f;
        for (var d = 0; d < dim; d++)
            s += q[i * dim + d] * c[j * dim + d];
        s *= invTemperature;
        if ((flags & 1) != 0)
            s -= offset[j];
        if ((flags & 2) != 0 && j != i && ids[j] == ids[i])
            s = float.NegativeInfinity;
        l[index] = s;
    }

    /// <summary>Row i: l(i, columns[e]) += bias[slots[e]] over its repeat entries (an accidental hit stays −∞).</summary>
    static void AddRepeatBiasKernel(Index1D i, ArrayView<int> starts, ArrayView<int> columns, ArrayView<int> slots, ArrayView<float> bias,
        ArrayView<float> l, int rows)
    {
        for (var e = starts[i]; e < starts[i + 1]; e++)
            l[columns[e] * rows + i] += bias[slots[e]];
    }

    /// <summary>
    /// Slot s: grad[s] = Σ g(i, columns[e])·τ over the entries of slot s, rows and entries in order
    /// (g holds (softmax − onehot)/τ; the bias's logits are not divided by τ).
    /// </summary>
    static void RepeatBiasGradientKernel(Index1D s, ArrayView<int> starts, ArrayView<int> columns, ArrayView<int> slots, ArrayView<float> g,
        ArrayView<float> grad, int rows, float temperature)
    {
        var sum = 0f;
        for (var i = 0; i < rows; i++)
        {
            for (var e = starts[i]; e < starts[i + 1]; e++)
            {
                if (slots[e] == s)
                    sum += g[columns[e] * rows + i] * temperature;
            }
        }
        grad[s] = sum;
    }

    /// <summary>
    /// Thread (chunk k, row i): over the columns j of chunk k, max[k,i] = max_j l(i,j) and
    /// sum[k,i] = Σ_j exp(l(i,j) − max[k,i]) (0 when the whole chunk is −∞: accidental hits).
    /// </summary>
    static void ChunkMaxSumKernel(Index1D index, ArrayView<float> l, ArrayView<float> chunkMax, ArrayView<float> chunkSum, int rows, int chunkLength)
    {
        var k = index / rows;
        var i = index % rows;
        var end = Math.Min(rows, (k + 1) * chunkLength);
        var max = float.NegativeInfinity;
        for (var j = k * chunkLength; j < end; j++)
            max = MathF.Max(max, l[j * rows + i]);
        var sum = 0f;
        if (max != float.NegativeInfinity)
        {
            for (var j = k * chunkLength; j < end; j++)
                sum += MathF.Exp(l[j * rows + i] - max);
        }
        chunkMax[index] = max;
        chunkSum[index] = sum;
    }

    /// <summary>
    /// Row i: the chunks combined, max_i and sum_i = Σ_k sum[k,i]·exp(max[k,i] − max_i) (kept in the
    /// chunk-0 slots for the gradient phase); loss_i = max_i + log(sum_i) − l(i,i).
    /// </summary>
    static void RowLossKernel(Index1D i, ArrayView<float> l, ArrayView<float> chunkMax, ArrayView<float> chunkSum, ArrayView<float> loss, int rows, int chunks)
    {
        var max = float.NegativeInfinity;
        for (var k = 0; k < chunks; k++)
            max = MathF.Max(max, chunkMax[k * rows + i]);
        var sum = 0f;
        for (var k = 0; k < chunks; k++)
            sum += chunkSum[k * rows + i] * MathF.Exp(chunkMax[k * rows + i] - max);
        loss[i] = max + MathF.Log(sum) - l[i * rows + i];
        chunkMax[i] = max;
        chunkSum[i] = sum;
    }

    /// <summary>Thread (chunk k, row i): the chunk's logits become g(i,j) = (softmax − onehot(i)) / τ, subnormals flushed.</summary>
    static void SoftmaxGradientKernel(Index1D index, ArrayView<float> l, ArrayView<float> rowMaxSum, int rows, int chunkLength, float invTemperature)
    {
        var k = index / rows;
        var i = index % rows;
        var max = rowMaxSum[i];
        var scale = invTemperature / rowMaxSum[rows * SoftmaxChunks + i];
        var end = Math.Min(rows, (k + 1) * chunkLength);
        for (var j = k * chunkLength; j < end; j++)
        {
            var g = MathF.Exp(l[j * rows + i] - max) * scale;
            g = Flush(g);
            l[j * rows + i] = j == i ? g - invTemperature : g;
        }
    }

    /// <summary>dq[i,d] = Σ_j g(i,j)·c[j,d].</summary>
    static void GradQueryKernel(Index1D index, ArrayView<float> g, ArrayView<float> c, ArrayView<float> dq, int rows, int dim)
    {
        var i = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var j = 0; j < rows; j++)
            s += g[j * rows + i] * c[j * dim + d];
        dq[index] = s;
    }

    /// <summary>dc[j,d] = Σ_i g(i,j)·q[i,d].</summary>
    static void GradCandidateKernel(Index1D index, ArrayView<float> g, ArrayView<float> q, ArrayView<float> dc, int rows, int dim)
    {
        var j = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var i = 0; i < rows; i++)
            s += g[j * rows + i] * q[i * dim + d];
        dc[index] = s;
    }

    MemoryBuffer1D<float, Stride1D.Dense>? logitRows;
    MemoryBuffer1D<float, Stride1D.Dense>? chunkStats;

    public void InBatchSoftmax(DeviceBuffer<float> q, DeviceBuffer<float> c, int rows, int dim, DeviceBuffer<float>? columnOffset,
        float temperature, DeviceBuffer<int>? itemIds, DeviceBuffer<float> lossPerRow, DeviceBuffer<float> dq, DeviceBuffer<float> dc,
        RepeatLogits? repeat = null)
    {
        if (rows == 0)
            return;
        var l = Scratch(ref logitRows, (long)rows * rows);
        // Max and sum of each (chunk, row), chunk-major; the sums follow the maxima.
        var stats = Scratch(ref chunkStats, 2L * SoftmaxChunks * rows);
        var (chunkMax, chunkSum) = (stats.SubView(0, SoftmaxChunks * rows), stats.SubView(SoftmaxChunks * rows, SoftmaxChunks * rows));
        var chunkLength = (rows + SoftmaxChunks - 1) / SoftmaxChunks;
        var flags = (columnOffset == null ? 0 : 1) | (itemIds == null ? 0 : 2);
        var invTemperature = 1f / temperature;
        LogitsLauncher(rows * rows, V(q), V(c), Optional(columnOffset), Optional(itemIds), l, rows, dim, invTemperature, flags);
        if (repeat != null)
            AddRepeatBiasLauncher(rows, V(repeat.RowStarts), V(repeat.Columns), V(repeat.Slots), V(repeat.Bias), l, rows);
        ChunkMaxSumLauncher(SoftmaxChunks * rows, l, chunkMax, chunkSum, rows, chunkLength);
        RowLossLauncher(rows, l, chunkMax, chunkSum, V(lossPerRow), rows, SoftmaxChunks);
        SoftmaxGradientLauncher(SoftmaxChunks * rows, l, stats, rows, chunkLength, invTemperature);
        if (repeat is { SlotCount: > 0 })
            RepeatBiasGradientLauncher(repeat.SlotCount, V(repeat.RowStarts), V(repeat.Columns), V(repeat.Slots), l, V(repeat.BiasGradient), rows, temperature);
        GradQueryLauncher(rows * dim, l, V(c), V(dq), rows, dim);
        GradCandidateLauncher(rows * dim, l, V(q), V(dc), rows, dim);
    }
}
