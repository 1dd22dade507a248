using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>Batch assembly as kernels: gathers, one-hot and numeric slots read the resident columns through the batch's row list.</summary>
public sealed partial class IlgpuKernels
{
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>> GatherIntsLauncher => Load(ref field, GatherIntsKernel);
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>> GatherFloatsLauncher => Load(ref field, GatherFloatsKernel);
    Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> OneHotLauncher => Load(ref field, OneHotKernel);
    Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int> CopyToColumnLauncher => Load(ref field, CopyToColumnKernel);

    static void GatherIntsKernel(Index1D r, ArrayView<int> source, ArrayView<int> rows, ArrayView<int> target) => target[r] = source[rows[r]];

    static void GatherFloatsKernel(Index1D r, ArrayView<float> source, ArrayView<int> rows, ArrayView<float> target) => target[r] = source[rows[r]];

    /// <summary>x[r, offset + k] = (k == column[rows[r]]) ? 1 : 0.</summary>
    static void OneHotKernel(Index1D i, ArrayView<int> column, ArrayView<int> rows, ArrayView<float> x, int depth, int stride, int offset)
    {
        var r = i / depth;
        var k = i % depth;
        x[r * stride + offset + k] = column[rows[r]] == k ? 1f : 0f;
    }

    static void CopyToColumnKernel(Index1D r, ArrayView<float> values, ArrayView<int> rows, ArrayView<float> x, int stride, int offset) =>
        x[r * stride + offset] = values[rows[r]];

    public void GatherRows(DeviceBuffer<int> source, DeviceBuffer<int> rows, int count, DeviceBuffer<int> target)
    {
        if (count > 0)
            GatherIntsLauncher(count, V(source), V(rows), V(target));
    }

    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> rows, int count, DeviceBuffer<float> target)
    {
        if (count > 0)
            GatherFloatsLauncher(count, V(source), V(rows), V(target));
    }

    public void OneHot(DeviceBuffer<int> column, DeviceBuffer<int> rows, int count, int depth, DeviceBuffer<float> x, int xStride, int offset)
    {
        if (count * depth > 0)
            OneHotLauncher(count * depth, V(column), V(rows), V(x), depth, xStride, offset);
    }

    public void CopyToColumn(DeviceBuffer<float> values, DeviceBuffer<int> rows, int count, DeviceBuffer<float> x, int xStride, int offset)
    {
        if (count > 0)
            CopyToColumnLauncher(count, V(values), V(rows), V(x), xStride, offset);
    }
}
