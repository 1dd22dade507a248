using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>Embedding tables: the batch gather and the per-row gradient sums.</summary>
public sealed unsafe partial class SimdKernels
{
    public void EmbeddingGather(DeviceBuffer<float> tableBuffer, int dim, DeviceBuffer<int> columnBuffer, DeviceBuffer<int> rowsBuffer, int count,
        DeviceBuffer<float> xBuffer, int xStride, int offset)
    {
        var table = S(tableBuffer);
        var column = S(columnBuffer);
        var rows = S(rowsBuffer);
        var x = S(xBuffer);
        for (var r = 0; r < count; r++)
            table.Slice(column[rows[r]] * dim, dim).CopyTo(x.Slice(r * xStride + offset, dim));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EmbeddingRowGradients(DeviceBuffer<float> dxBuffer, int dxStride, int offset, int dim, RowGroups groups, DeviceBuffer<float> gradBuffer)
    {
        var dx = S(dxBuffer);
        var grad = S(gradBuffer);
        var rows = S(groups.Rows);
        var starts = S(groups.Starts);
        var positions = S(groups.Positions);
        if (dim == 16 && Vector256.IsHardwareAccelerated)
        {
            // The row's sum in two registers: the same fused multiply-adds (1·dx + sum) in the same order as Axpy below.
            var one = Vector256<float>.One;
            fixed (float* pdx = dx, pgrad = grad)
            {
                for (var u = 0; u < rows.Length; u++)
                {
                    var (s0, s1) = (Vector256<float>.Zero, Vector256<float>.Zero);
                    for (var p = starts[u]; p < starts[u + 1]; p++)
                    {
                        var from = pdx + (long)positions[p] * dxStride + offset;
                        s0 = Vector256.FusedMultiplyAdd(one, Vector256.Load(from), s0);
                        s1 = Vector256.FusedMultiplyAdd(one, Vector256.Load(from + 8), s1);
                    }
                    var target = pgrad + (long)rows[u] * 16;
                    s0.Store(target);
                    s1.Store(target + 8);
                }
            }
            return;
        }
        for (var u = 0; u < rows.Length; u++)
        {
            var target = grad.Slice(rows[u] * dim, dim);
            target.Clear();
            for (var p = starts[u]; p < starts[u + 1]; p++)
                Axpy(1, dx.Slice(positions[p] * dxStride + offset, dim), target);
        }
    }
}
