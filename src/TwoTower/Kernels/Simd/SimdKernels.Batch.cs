using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>Batch assembly: a batch is a list of rows of the resident columns.</summary>
public sealed unsafe partial class SimdKernels
{
    public void GatherRows(DeviceBuffer<int> source, DeviceBuffer<int> rows, int count, DeviceBuffer<int> target) =>
        Gather<int>(S(source), S(rows)[..count], S(target));

    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> rows, int count, DeviceBuffer<float> target) =>
        Gather<float>(S(source), S(rows)[..count], S(target));

    static void Gather<T>(ReadOnlySpan<T> source, ReadOnlySpan<int> rows, Span<T> target)
    {
        for (var r = 0; r < rows.Length; r++)
            target[r] = source[rows[r]];
    }

    public void OneHot(DeviceBuffer<int> columnBuffer, DeviceBuffer<int> rowsBuffer, int count, int depth, DeviceBuffer<float> xBuffer, int xStride, int offset)
    {
        var column = S(columnBuffer);
        var rows = S(rowsBuffer);
        var x = S(xBuffer);
        for (var r = 0; r < count; r++)
        {
            var slot = x.Slice(r * xStride + offset, depth);
            slot.Clear();
            var id = column[rows[r]];
            if ((uint)id < (uint)depth)
                slot[id] = 1;
        }
    }

    public void CopyToColumn(DeviceBuffer<float> valuesBuffer, DeviceBuffer<int> rowsBuffer, int count, DeviceBuffer<float> xBuffer, int xStride, int offset)
    {
        var values = S(valuesBuffer);
        var rows = S(rowsBuffer);
        var x = S(xBuffer);
        for (var r = 0; r < count; r++)
            x[r * xStride + offset] = values[rows[r]];
    }
}
