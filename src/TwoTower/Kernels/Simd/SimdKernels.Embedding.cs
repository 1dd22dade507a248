using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>Embedding tables: the batch gather and the per-row gradient sums, of single ids and of pooled bags (the purchase history).</summary>
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

    /// <summary>Rows in parallel chunks: each row's pooling is its own, so any split gives the same result.</summary>
    public void EmbeddingBagGather(DeviceBuffer<float> tableBuffer, int dim, DeviceBuffer<int> idsBuffer, int bagLength, DeviceBuffer<float> slotWeightsBuffer,
        DeviceBuffer<int> rowsBuffer, int count, DeviceBuffer<float> xBuffer, int xStride, int offset, DeviceBuffer<float> weightsBuffer)
    {
        var (table, ids, slotWeights, rows, x, weights) = ((HostBuffer<float>)tableBuffer, (HostBuffer<int>)idsBuffer, (HostBuffer<float>)slotWeightsBuffer,
            (HostBuffer<int>)rowsBuffer, (HostBuffer<float>)xBuffer, (HostBuffer<float>)weightsBuffer);
        ForChunks(count, (first, end) =>
        {
            var tableRows = table.Span;
            var slotWeight = slotWeights.Span;
            for (var r = first; r < end; r++)
            {
                var bag = ids.Span.Slice(rows.Span[r] * bagLength, bagLength);
                var w = weights.Span.Slice(r * bagLength, bagLength);
                var total = 0f;
                for (var j = 0; j < bagLength; j++)
                    total += bag[j] >= 0 ? slotWeight[j] : 0f;
                var target = x.Span.Slice(r * xStride + offset, dim);
                target.Clear();
                for (var j = 0; j < bagLength; j++)
                {
                    w[j] = bag[j] >= 0 ? slotWeight[j] / total : 0f;
                    if (bag[j] >= 0)
                        Axpy(w[j], tableRows.Slice(bag[j] * dim, dim), target);
                }
            }
        });
    }

    /// <summary>Groups in parallel chunks: each group's sum is its own, added in position order, so any split gives the same result.</summary>
    public void EmbeddingBagRowGradients(DeviceBuffer<float> dxBuffer, int dxStride, int offset, int dim, DeviceBuffer<float> weightsBuffer, int bagLength,
        RowGroups groups, bool accumulate, DeviceBuffer<float> gradBuffer)
    {
        var (dx, weights, grad) = ((HostBuffer<float>)dxBuffer, (HostBuffer<float>)weightsBuffer, (HostBuffer<float>)gradBuffer);
        var (rows, starts, positions) = ((HostBuffer<int>)groups.Rows, (HostBuffer<int>)groups.Starts, (HostBuffer<int>)groups.Positions);
        ForChunks(groups.Count, (first, end) =>
        {
            var dxRows = dx.Span;
            var weight = weights.Span;
            var start = starts.Span;
            var position = positions.Span;
            Span<float> sum = stackalloc float[dim];
            for (var u = first; u < end; u++)
            {
                sum.Clear();
                for (var p = start[u]; p < start[u + 1]; p++)
                {
                    var e = position[p];
                    Axpy(weight[e], dxRows.Slice(e / bagLength * dxStride + offset, dim), sum);
                }
                var target = grad.Span.Slice(rows.Span[u] * dim, dim);
                if (accumulate)
                    Axpy(1, sum, target);
                else
                    sum.CopyTo(target);
            }
        });
    }

    public void ZeroRows(DeviceBuffer<float> tableBuffer, int rowWidth, DeviceBuffer<int> rowsBuffer)
    {
        var table = S(tableBuffer);
        foreach (var row in S(rowsBuffer))
            table.Slice(row * rowWidth, rowWidth).Clear();
    }
}
