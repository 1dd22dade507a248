using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>Float64 reference of the dense layers.</summary>
public static partial class Reference
{
    public static double[] DenseForward(float[] x, int rows, int inDim, float[] w, float[] b, int outDim, bool relu)
    {
        var y = new double[rows * outDim];
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            double s = b[o];
            for (var k = 0; k < inDim; k++)
                s += (double)x[r * inDim + k] * w[k * outDim + o];
            y[r * outDim + o] = relu ? Math.Max(s, 0) : s;
        }
        return y;
    }

    public static (double[] Dw, double[] Db, double[] Dx) DenseBackward(float[] x, int rows, int inDim, float[] w, int outDim, float[] dy)
    {
        var dw = new double[inDim * outDim];
        var db = new double[outDim];
        var dx = new double[rows * inDim];
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            double g = dy[r * outDim + o];
            db[o] += g;
            for (var k = 0; k < inDim; k++)
            {
                dw[k * outDim + o] += (double)x[r * inDim + k] * g;
                dx[r * inDim + k] += (double)w[k * outDim + o] * g;
            }
        }
        return (dw, db, dx);
    }
}

/// <summary>The SIMD backend's the dense layers: forward, the weight/bias/input gradients, relu backward. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdDenseTests
{
    const double Tolerance = 1e-4;

    [Theory]
    [InlineData(1, 37, 19, 16, true)]
    [InlineData(2, 64, 44, 16, false)]
    [InlineData(2, 5, 7, 3, true)]
    public void DenseForwardMatchesReference(int threads, int rows, int inDim, int outDim, bool relu)
    {
        var x = Reference.Random(rows * inDim, 1);
        var w = Reference.Random(inDim * outDim, 2);
        var b = Reference.Random(outDim, 3);
        var y = Reference.Poisoned(rows * outDim);
        new ArrayOps(new SimdKernels(threads)).DenseForward(x, rows, inDim, w, b, outDim, relu, y);
        Assert.True(Reference.MaxRelativeError(y, Reference.DenseForward(x, rows, inDim, w, b, outDim, relu)) < Tolerance);
    }

    [Theory]
    [InlineData(37, 19, 16)]
    [InlineData(5, 7, 3)]
    public void DenseBackwardMatchesReference(int rows, int inDim, int outDim)
    {
        var x = Reference.Random(rows * inDim, 4);
        var w = Reference.Random(inDim * outDim, 5);
        var dy = Reference.Random(rows * outDim, 6);
        var (dw, db, dx) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        new ArrayOps(new SimdKernels(2)).DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        var expected = Reference.DenseBackward(x, rows, inDim, w, outDim, dy);
        Assert.True(Reference.MaxRelativeError(dw, expected.Dw) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, expected.Db) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, expected.Dx) < Tolerance);
    }

    /// <summary>
    /// The 16-wide path does, per output, the fused multiply-adds of the general path in the same
    /// order (inputs ascending, zero inputs skipped; rows ascending for dw and db): equal bit for bit
    /// to that chain written as scalar FMAs.
    /// </summary>
    [Fact]
    public void SixteenWideDenseLayersEqualTheScalarFusedMultiplyAddChain()
    {
        const int rows = 130, inDim = 44, outDim = 16;
        var x = Reference.Random(rows * inDim, 51).Select((v, i) => i % 3 == 0 ? 0f : v).ToArray();   // zero inputs are skipped
        var w = Reference.Random(inDim * outDim, 52);
        var b = Reference.Random(outDim, 53);
        var dy = Reference.Random(rows * outDim, 54);
        var (y, dw, db, dx) = (Reference.Poisoned(rows * outDim), Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        var ops = new ArrayOps(new SimdKernels(2));
        ops.DenseForward(x, rows, inDim, w, b, outDim, false, y);
        ops.DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            var s = b[o];
            for (var k = 0; k < inDim; k++)
                s = x[r * inDim + k] == 0 ? s : MathF.FusedMultiplyAdd(x[r * inDim + k], w[k * outDim + o], s);
            Assert.Equal(s, y[r * outDim + o]);
        }
        for (var k = 0; k <= inDim; k++)
        for (var o = 0; o < outDim; o++)
        {
            var s = 0f;
            for (var r = 0; r < rows; r++)
            {
                var xk = k == inDim ? 1f : x[r * inDim + k];
                s = xk == 0 ? s : MathF.FusedMultiplyAdd(xk, dy[r * outDim + o], s);
            }
            Assert.Equal(s, k == inDim ? db[o] : dw[k * outDim + o]);
        }
    }

    [Fact]
    public void ReluBackwardZeroesWhereOutputIsNotPositive()
    {
        float[] y = [1, 0, -2, 3];
        float[] dy = [5, 6, 7, 8];
        new ArrayOps(new SimdKernels(1)).ReluBackward(y, dy);
        Assert.Equal([5, 0, 0, 8], dy);
    }
}

/// <summary>The ILGPU kernels for the dense layers: forward, the weight/bias/input gradients, relu backward, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuDenseTests(IlgpuCpu ilgpu)
{
    const double Tolerance = 1e-4;
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

    [Theory]
    [InlineData(70, 19, 16)]
    [InlineData(256, 44, 16)]
    public void DenseForwardAndBackwardMatchReferenceAndSimd(int rows, int inDim, int outDim)
    {
        var x = Reference.Random(rows * inDim, 1);
        var w = Reference.Random(inDim * outDim, 2);
        var b = Reference.Random(outDim, 3);
        var (y, ys) = (Reference.Poisoned(rows * outDim), Reference.Poisoned(rows * outDim));
        gpu.DenseForward(x, rows, inDim, w, b, outDim, true, y);
        simd.DenseForward(x, rows, inDim, w, b, outDim, true, ys);
        Assert.True(Reference.MaxRelativeError(y, Reference.DenseForward(x, rows, inDim, w, b, outDim, true)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(y, Reference.ToDouble(ys)) < Tolerance);

        var dy = Reference.Random(rows * outDim, 4);
        var (dw, db, dx) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        var (dws, dbs, dxs) = (Reference.Poisoned(inDim * outDim), Reference.Poisoned(outDim), Reference.Poisoned(rows * inDim));
        gpu.DenseBackward(x, rows, inDim, w, outDim, dy, dw, db, dx);
        simd.DenseBackward(x, rows, inDim, w, outDim, dy, dws, dbs, dxs);
        var expected = Reference.DenseBackward(x, rows, inDim, w, outDim, dy);
        Assert.True(Reference.MaxRelativeError(dw, expected.Dw) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, expected.Db) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, expected.Dx) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dw, Reference.ToDouble(dws)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(db, Reference.ToDouble(dbs)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dx, Reference.ToDouble(dxs)) < Tolerance);

        float[] ry = [1, 0, -2, 3];
        float[] rdy = [5, 6, 7, 8];
        gpu.ReluBackward(ry, rdy);
        Assert.Equal([5f, 0, 0, 8], rdy);
    }
}
