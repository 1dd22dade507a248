using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>Dense layers: forward, the weight/bias/input gradients, relu backward; a 16-wide register path beside the general loop.</summary>
public sealed unsafe partial class SimdKernels
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void DenseForward(DeviceBuffer<float> xBuffer, int rows, int inDim, DeviceBuffer<float> wBuffer, DeviceBuffer<float> bBuffer,
        int outDim, bool relu, DeviceBuffer<float> yBuffer)
    {
        var x = S(xBuffer);
        var w = S(wBuffer);
        var b = S(bBuffer);
        var y = S(yBuffer);
        if (outDim == 16 && Vector256.IsHardwareAccelerated)
        {
            fixed (float* px = x, pw = w, pb = b, py = y)
            {
                var (xp, wp, bp, yp) = ((nint)px, (nint)pw, (nint)pb, (nint)py);
                ForChunks(rows, (first, end) => DenseForward16((float*)xp, first, end, inDim, (float*)wp, (float*)bp, relu, (float*)yp));
            }
            return;
        }
        for (var r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * outDim, outDim);
            b[..outDim].CopyTo(yr);
            var xr = x.Slice(r * inDim, inDim);
            for (var k = 0; k < inDim; k++)
            {
                var xk = xr[k];
                if (xk != 0)
                    Axpy(xk, w.Slice(k * outDim, outDim), yr);
            }
            if (relu)
            {
                for (var o = 0; o < outDim; o++)
                    yr[o] = Math.Max(yr[o], 0);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void DenseBackward(DeviceBuffer<float> xBuffer, int rows, int inDim, DeviceBuffer<float> wBuffer, int outDim,
        DeviceBuffer<float> dyBuffer, DeviceBuffer<float> dwBuffer, DeviceBuffer<float> dbBuffer, DeviceBuffer<float>? dxBuffer)
    {
        var x = S(xBuffer);
        var w = S(wBuffer);
        var dy = S(dyBuffer);
        var dw = S(dwBuffer);
        var db = S(dbBuffer);
        var dx = S(dxBuffer, rows * inDim);
        if (outDim == 16 && Vector256.IsHardwareAccelerated)
        {
            fixed (float* px = x, pw = w, pdy = dy, pdw = dw, pdb = db, pdx = dx)
            {
                var (xp, wp, dyp, dwp, dbp, dxp) = ((nint)px, (nint)pw, (nint)pdy, (nint)pdw, (nint)pdb, (nint)pdx);
                // Each output column k (k = inDim: the bias) sums its rows in row order: columns are independent.
                ForChunks(inDim + 1, (first, end) => DenseWeightGradient16((float*)xp, rows, inDim, (float*)dyp, first, end, (float*)dwp, (float*)dbp));
                if (!dx.IsEmpty)
                    ForChunks(rows, (first, end) => DenseInputGradient16((float*)wp, inDim, (float*)dyp, first, end, (float*)dxp));
            }
            return;
        }
        dw[..(inDim * outDim)].Clear();
        db[..outDim].Clear();
        for (var r = 0; r < rows; r++)
        {
            var dyr = dy.Slice(r * outDim, outDim);
            Axpy(1, dyr, db);
            var xr = x.Slice(r * inDim, inDim);
            for (var k = 0; k < inDim; k++)
            {
                var xk = xr[k];
                if (xk != 0)
                    Axpy(xk, dyr, dw.Slice(k * outDim, outDim));
            }
            if (!dx.IsEmpty)
            {
                var dxr = dx.Slice(r * inDim, inDim);
                for (var k = 0; k < inDim; k++)
                    dxr[k] = Dot(w.Slice(k * outDim, outDim), dyr);
            }
        }
    }

    // The 16-wide layers (every layer of the notebook's towers) keep a row's 16 outputs in two
    // registers. They do the same fused multiply-adds in the same order as the general path (Axpy,
    // Dot), so results are bit-identical to it; only the call and slicing overhead goes.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DenseForward16(float* x, int first, int end, int inDim, float* w, float* b, bool relu, float* y)
    {
        for (var r = first; r < end; r++)
        {
            var (y0, y1) = (Vector256.Load(b), Vector256.Load(b + 8));
            var xr = x + (long)r * inDim;
            for (var k = 0; k < inDim; k++)
            {
                var xk = xr[k];
                if (xk == 0)
                    continue;
                var a = Vector256.Create(xk);
                y0 = Vector256.FusedMultiplyAdd(a, Vector256.Load(w + k * 16), y0);
                y1 = Vector256.FusedMultiplyAdd(a, Vector256.Load(w + k * 16 + 8), y1);
            }
            var yr = y + (long)r * 16;
            y0.Store(yr);
            y1.Store(yr + 8);
            if (relu)
            {
                for (var o = 0; o < 16; o++)
                    yr[o] = Math.Max(yr[o], 0);
            }
        }
    }

    /// <summary>dw[k, ·] = Σ_r x[r,k]·dy[r, ·] for k in [first, end), k = inDim meaning db (x = 1); rows in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DenseWeightGradient16(float* x, int rows, int inDim, float* dy, int first, int end, float* dw, float* db)
    {
        for (var k = first; k < end; k++)
        {
            var (g0, g1) = (Vector256<float>.Zero, Vector256<float>.Zero);
            for (var r = 0; r < rows; r++)
            {
                var xk = k == inDim ? 1f : x[(long)r * inDim + k];
                if (xk == 0)
                    continue;
                var a = Vector256.Create(xk);
                g0 = Vector256.FusedMultiplyAdd(a, Vector256.Load(dy + (long)r * 16), g0);
                g1 = Vector256.FusedMultiplyAdd(a, Vector256.Load(dy + (long)r * 16 + 8), g1);
            }
            var target = k == inDim ? db : dw + k * 16;
            g0.Store(target);
            g1.Store(target + 8);
        }
    }

    /// <summary>dx[r, k] = Σ_o w[k,o]·dy[r,o] for rows [first, end).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DenseInputGradient16(float* w, int inDim, float* dy, int first, int end, float* dx)
    {
        for (var r = first; r < end; r++)
        {
            var (d0, d1) = (Vector256.Load(dy + (long)r * 16), Vector256.Load(dy + (long)r * 16 + 8));
            var dxr = dx + (long)r * inDim;
            for (var k = 0; k < inDim; k++)
            {
                var acc = Vector256.FusedMultiplyAdd(Vector256.Load(w + k * 16), d0, Vector256<float>.Zero);
                dxr[k] = Vector256.Sum(Vector256.FusedMultiplyAdd(Vector256.Load(w + k * 16 + 8), d1, acc));
            }
        }
    }

    public void ReluBackward(DeviceBuffer<float> yBuffer, DeviceBuffer<float> dyBuffer, int count)
    {
        var y = S(yBuffer);
        var dy = S(dyBuffer);
        for (var i = 0; i < count; i++)
        {
            if (y[i] <= 0)
                dy[i] = 0;
        }
    }
}
