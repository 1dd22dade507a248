using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>Dense layers as kernels: forward, the weight/bias gradients as row-chunk partials plus an ordered sum, the input gradient, relu backward.</summary>
public sealed partial class IlgpuKernels
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> DenseForwardLauncher => Load(ref field, DenseForwardKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int> DenseGradPartialsLauncher => Load(ref field, DenseGradPartialsKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> DenseGradSumLauncher => Load(ref field, DenseGradSumKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> DenseInputGradLauncher => Load(ref field, DenseInputGradKernel);
    Action<Index1D, ArrayView<float>, ArrayView<float>> ReluBackwardLauncher => Load(ref field, ReluBackwardKernel);

    /// <summary>y[r,o] = b[o] + Σ_k x[r,k]·w[k,o], relu when asked (1 = yes).</summary>
    static void DenseForwardKernel(Index1D i, ArrayView<float> x, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y, int inDim, int outDim, int relu)
    {
        var r = i / outDim;
        var o = i % outDim;
        var s = b[o];
        for (var k = 0; k < inDim; k++)
            s += x[r * inDim + k] * w[k * outDim + o];
        y[i] = relu == 1 ? MathF.Max(s, 0f) : s;
    }

    // dw = xᵀ·dy and db = Σ_r dy reduce over the batch: a thread per output would leave most of a GPU
    // idle (704 threads for a 44×16 layer) walking 2048 rows each; instead each of DenseGradChunks row
    // chunks sums its part, and a second kernel adds the chunks in order (deterministic).
    const int DenseGradChunks = 32;

    /// <summary>
    /// Thread (chunk c, k, o), k ≤ inDim: partials[c, k, o] = Σ over the chunk's rows of x[r,k]·dy[r,o],
    /// with x[r, inDim] = 1 (the bias).
    /// </summary>
    static void DenseGradPartialsKernel(Index1D i, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> partials, int rows, int inDim, int outDim,
        int chunkLength)
    {
        var width = (inDim + 1) * outDim;
        var c = i / width;
        var k = i % width / outDim;
        var o = i % outDim;
        var end = Math.Min(rows, (c + 1) * chunkLength);
        var s = 0f;
        for (var r = c * chunkLength; r < end; r++)
            s += (k == inDim ? 1f : x[r * inDim + k]) * dy[r * outDim + o];
        partials[i] = s;
    }

    /// <summary>Thread (k, o): the chunks' partials added in chunk order, into dw[k,o] (k &lt; inDim) or db[o] (k = inDim).</summary>
    static void DenseGradSumKernel(Index1D i, ArrayView<float> partials, ArrayView<float> dw, ArrayView<float> db, int inDim, int outDim, int chunks)
    {
        var width = (inDim + 1) * outDim;
        var s = 0f;
        for (var c = 0; c < chunks; c++)
            s += partials[c * width + i];
        if (i < inDim * outDim)
            dw[i] = s;
        else
            db[i - inDim * outDim] = s;
    }

    /// <summary>dx[r,k] = Σ_o w[k,o]·dy[r,o].</summary>
    static void DenseInputGradKernel(Index1D i, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> dx, int inDim, int outDim)
    {
        var r = i / inDim;
        var k = i % inDim;
        var s = 0f;
        for (var o = 0; o < outDim; o++)
            s += w[k * outDim + o] * dy[r * outDim + o];
        dx[i] = s;
    }

    static void ReluBackwardKernel(Index1D i, ArrayView<float> y, ArrayView<float> dy)
    {
        if (y[i] <= 0)
            dy[i] = 0;
    }

    public void DenseForward(DeviceBuffer<float> x, int rows, int inDim, DeviceBuffer<float> w, DeviceBuffer<float> b, int outDim, bool relu,
        DeviceBuffer<float> y)
    {
        if (rows > 0)
            DenseForwardLauncher(rows * outDim, V(x), V(w), V(b), V(y), inDim, outDim, relu ? 1 : 0);
    }

    MemoryBuffer1D<float, Stride1D.Dense>? densePartials;

    public void DenseBackward(DeviceBuffer<float> x, int rows, int inDim, DeviceBuffer<float> w, int outDim, DeviceBuffer<float> dy,
        DeviceBuffer<float> dw, DeviceBuffer<float> db, DeviceBuffer<float>? dx)
    {
        var width = (inDim + 1) * outDim;
        var partials = Scratch(ref densePartials, (long)DenseGradChunks * width);
        var chunkLength = Math.Max(1, (rows + DenseGradChunks - 1) / DenseGradChunks);
        DenseGradPartialsLauncher(DenseGradChunks * width, V(x), V(dy), partials, rows, inDim, outDim, chunkLength);
        DenseGradSumLauncher(width, partials, V(dw), V(db), inDim, outDim, DenseGradChunks);
        if (dx != null && rows > 0)
            DenseInputGradLauncher(rows * inDim, V(w), V(dy), V(dx), inDim, outDim);
    }

    public void ReluBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, int count)
    {
        if (count > 0)
            ReluBackwardLauncher(count, V(y), V(dy));
    }
}
