using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>Embedding tables as kernels: the batch gather and the per-row gradient sums, of single ids and of pooled bags (deterministic, no atomics).</summary>
public sealed partial class IlgpuKernels
{
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> GatherLauncher => Load(ref field, GatherKernel);
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> RowGradientsLauncher => Load(ref field, RowGradientsKernel);

    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int, int> BagGatherLauncher => Load(ref field, BagGatherKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int, int, int> BagRowGradientsLauncher => Load(ref field, BagRowGradientsKernel);
    Action<Index1D, ArrayView<float>, ArrayView<int>, int> ZeroRowsLauncher => Load(ref field, ZeroRowsKernel);

    /// <summary>x[r, offset + d] = table[column[rows[r]], d].</summary>
    static void GatherKernel(Index1D i, ArrayView<float> table, ArrayView<int> column, ArrayView<int> rows, ArrayView<float> x, int dim, int stride, int offset)
    {
        var r = i / dim;
        var d = i % dim;
        x[r * stride + offset + d] = table[column[rows[r]] * dim + d];
    }

    /// <summary>
    /// Thread (u, d): grad[rows[u], d] = Σ dx[p, offset + d] over the positions p = positions[starts[u]..starts[u+1])
    /// grouped under row u, added from zero in batch order: deterministic, no atomics.
    /// </summary>
    static void RowGradientsKernel(Index1D i, ArrayView<float> dx, ArrayView<int> rows, ArrayView<int> starts, ArrayView<int> positions,
        ArrayView<float> grad, int dim, int stride, int offset)
    {
        var u = i / dim;
        var d = i % dim;
        var s = 0f;
        for (var p = starts[u]; p < starts[u + 1]; p++)
            s += dx[positions[p] * stride + offset + d];
        grad[rows[u] * dim + d] = s;
    }

    public void EmbeddingGather(DeviceBuffer<float> table, int dim, DeviceBuffer<int> column, DeviceBuffer<int> rows, int count, DeviceBuffer<float> x,
        int xStride, int offset)
    {
        if (count > 0)
            GatherLauncher(count * dim, V(table), V(column), V(rows), V(x), dim, xStride, offset);
    }

    public void EmbeddingRowGradients(DeviceBuffer<float> dx, int dxStride, int offset, int dim, RowGroups groups, DeviceBuffer<float> grad)
    {
        if (groups.Count > 0)
            RowGradientsLauncher(groups.Count * dim, V(dx), V(groups.Rows), V(groups.Starts), V(groups.Positions), V(grad), dim, dxStride, offset);
    }

    /// <summary>
    /// Thread (r, d): row r's bag ids[rows[r]·bagLength ..) pooled with the normalised slot weights
    /// (empty slots, id &lt; 0, skipped), added in slot order; thread d = 0 also writes the weights.
    /// </summary>
    static void BagGatherKernel(Index1D i, ArrayView<float> table, ArrayView<int> ids, ArrayView<float> slotWeights, ArrayView<int> rows,
        ArrayView<float> x, ArrayView<float> weights, int dim, int bagLength, int stride, int offset)
    {
        var r = i / dim;
        var d = i % dim;
        var bag = rows[r] * bagLength;
        var total = 0f;
        for (var j = 0; j < bagLength; j++)
            total += ids[bag + j] >= 0 ? slotWeights[j] : 0f;
        var s = 0f;
        for (var j = 0; j < bagLength; j++)
        {
            var id = ids[bag + j];
            var w = id >= 0 ? slotWeights[j] / total : 0f;
            if (d == 0)
                weights[r * bagLength + j] = w;
            if (id >= 0)
                s += w * table[id * dim + d];
        }
        x[r * stride + offset + d] = s;
    }

    /// <summary>Thread (u, d): Σ weights[e] · dx[e / bagLength, offset + d] over group u's positions, in order; stored or added.</summary>
    static void BagRowGradientsKernel(Index1D i, ArrayView<float> dx, ArrayView<float> weights, ArrayView<int> rows, ArrayView<int> starts,
        ArrayView<int> positions, ArrayView<float> grad, int dim, int bagLength, int stride, int offset, int accumulate)
    {
        var u = i / dim;
        var d = i % dim;
        var s = 0f;
        for (var p = starts[u]; p < starts[u + 1]; p++)
        {
            var e = positions[p];
            s += weights[e] * dx[e / bagLength * stride + offset + d];
        }
        var at = rows[u] * dim + d;
        grad[at] = accumulate != 0 ? grad[at] + s : s;
    }

    /// <summary>Thread (i, d): table[rows[i], d] = 0.</summary>
    static void ZeroRowsKernel(Index1D i, ArrayView<float> table, ArrayView<int> rows, int width) =>
        table[rows[i / width] * width + i % width] = 0f;

    public void EmbeddingBagGather(DeviceBuffer<float> table, int dim, DeviceBuffer<int> ids, int bagLength, DeviceBuffer<float> slotWeights,
        DeviceBuffer<int> rows, int count, DeviceBuffer<float> x, int xStride, int offset, DeviceBuffer<float> weights)
    {
        if (count > 0)
            BagGatherLauncher(count * dim, V(table), V(ids), V(slotWeights), V(rows), V(x), V(weights), dim, bagLength, xStride, offset);
    }

    public void EmbeddingBagRowGradients(DeviceBuffer<float> dx, int dxStride, int offset, int dim, DeviceBuffer<float> weights, int bagLength,
        RowGroups groups, bool accumulate, DeviceBuffer<float> grad)
    {
        if (groups.Count > 0)
            BagRowGradientsLauncher(groups.Count * dim, V(dx), V(weights), V(groups.Rows), V(groups.Starts), V(groups.Positions), V(grad),
                dim, bagLength, dxStride, offset, accumulate ? 1 : 0);
    }

    public void ZeroRows(DeviceBuffer<float> table, int rowWidth, DeviceBuffer<int> rows)
    {
        if (rows.Length > 0)
            ZeroRowsLauncher(rows.Length * rowWidth, V(table), V(rows), rowWidth);
    }
}
