using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>The SIMD backend's batch assembly: gathers, one-hot and numeric slots read through the batch's row list. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdBatchTests
{
    [Fact]
    public void BatchAssemblyOpsMatchHandComputedRows()
    {
        var ops = new ArrayOps(new SimdKernels(1));
        var ints = Enumerable.Repeat(-1, 3).ToArray();
        ops.GatherRows([10, 11, 12, 13], [3, 0, 3], ints);
        Assert.Equal([13, 10, 13], ints);
        var floats = Reference.Poisoned(2);
        ops.GatherRows([0.5f, 1.5f], [1, 0], floats);
        Assert.Equal([1.5f, 0.5f], floats);

        const int stride = 5;
        var x = Reference.Poisoned(3 * stride);
        ops.OneHot([3, 0, 2, 1], [2, 1, 0], depth: 3, x, stride, offset: 1);   // ids 2, 0, 3; id 3 ≥ depth: all zeros (the notebook's depth)
        Assert.Equal([0f, 0, 1], x.AsSpan(1, 3).ToArray());
        Assert.Equal([1f, 0, 0], x.AsSpan(6, 3).ToArray());
        Assert.Equal([0f, 0, 0], x.AsSpan(11, 3).ToArray());
        ops.CopyToColumn([9f, 8, 7], [2, 1, 0], x, stride, offset: 4);
        Assert.Equal([7f, 8, 9], new[] { x[4], x[9], x[14] });
        Assert.True(float.IsNaN(x[0]));   // columns outside the written slices untouched
    }
}

/// <summary>The ILGPU kernels for batch assembly: gathers, one-hot and numeric slots read through the batch's row list, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuBatchTests(IlgpuCpu ilgpu)
{
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

    [Fact]
    public void BatchAssemblyOpsMatchSimd()
    {
        var column = Enumerable.Range(0, 500).Select(i => i * 31 % 17).ToArray();
        var values = Reference.Random(500, 12);
        var rows = Enumerable.Range(0, 90).Select(i => i * 53 % 500).ToArray();
        var (ig, isimd) = (Enumerable.Repeat(-1, 90).ToArray(), Enumerable.Repeat(-1, 90).ToArray());
        gpu.GatherRows(column, rows, ig);
        simd.GatherRows(column, rows, isimd);
        Assert.Equal(isimd, ig);
        var (fg, fs) = (Reference.Poisoned(90), Reference.Poisoned(90));
        gpu.GatherRows(values, rows, fg);
        simd.GatherRows(values, rows, fs);
        Assert.Equal(fs, fg);

        const int stride = 23, depth = 16;
        var (xg, xs) = (Reference.Poisoned(90 * stride), Reference.Poisoned(90 * stride));
        gpu.OneHot(column, rows, depth, xg, stride, 2);
        simd.OneHot(column, rows, depth, xs, stride, 2);
        gpu.CopyToColumn(values, rows, xg, stride, 20);
        simd.CopyToColumn(values, rows, xs, stride, 20);
        Assert.Equal(xs, xg);   // NaN where neither wrote
    }
}
