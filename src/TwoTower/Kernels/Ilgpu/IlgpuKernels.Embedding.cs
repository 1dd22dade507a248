using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>Embedding tables as kernels: the batch gather and the per-row gradient sums (deterministic, no atomics).</summary>
public sealed partial class IlgpuKernels
{
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> GatherLauncher => Load(ref field, GatherKernel);
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> RowGradientsLauncher => Load(ref field, RowGradientsKernel);

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
}
