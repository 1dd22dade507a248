using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace TwoTower.Kernels;

/// <summary>
/// The ops of <see cref="IKernels"/> as ILGPU kernels (CUDA, OpenCL, or ILGPU's CPU accelerator for
/// checking them without a GPU). Each kernel is a static method over explicit views, mostly one
/// thread per output element; reductions over a batch (the softmax rows, dense weight gradients) are
/// split into chunks so that a batch of 2048 gives tens of thousands of threads. The same float
/// operations as the SIMD backend where it matters (the Adam step order, flush-to-zero, the embedding
/// gradient's summation order); the rank counting scores the positive and the candidates with one
/// loop, so ties are exact within the backend. Operands are
/// device buffers: the trainer uploads the columns, weights and Adam moments once, and the ops launch
/// on the accelerator's default stream without copies of their own.
/// </summary>
public sealed class IlgpuKernels : IKernels
{
    readonly Context context;
    readonly Accelerator accelerator;
    // Stand-ins for an absent optional operand (no logQ offsets, no item ids): a kernel takes a view either way.
    readonly MemoryBuffer1D<float, Stride1D.Dense> noFloats;
    readonly MemoryBuffer1D<int, Stride1D.Dense> noInts;

    public string Name => $"ilgpu {accelerator.AcceleratorType} ({accelerator.Name})";

    /// <summary>ILGPU's CPU accelerator (accelerator = ilgpu-cpu): a simulator, for correctness only.</summary>
    public bool IsCpuAccelerator => accelerator.AcceleratorType == AcceleratorType.CPU;

    IlgpuKernels(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
        noFloats = accelerator.Allocate1D<float>(1);
        noInts = accelerator.Allocate1D<int>(1);
        gatherInts = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>>(GatherIntsKernel);
        gatherFloats = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>>(GatherFloatsKernel);
        oneHot = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int>(OneHotKernel);
        toColumn = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(CopyToColumnKernel);
        denseForward = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(DenseForwardKernel);
        denseGradPartials = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(DenseGradPartialsKernel);
        denseGradSum = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(DenseGradSumKernel);
        denseInput = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(DenseInputGradKernel);
        relu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ReluBackwardKernel);
        gather = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int>(GatherKernel);
        rowGradients = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int>(RowGradientsKernel);
        logits = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, float, int>(LogitsKernel);
        chunkMaxSum = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ChunkMaxSumKernel);
        rowLoss = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(RowLossKernel);
        softmaxGradient = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, float>(SoftmaxGradientKernel);
        gradQ = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(GradQueryKernel);
        gradC = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(GradCandidateKernel);
        adam = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamConstants>(AdamKernel);
        adamRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AdamConstants, int, int>(AdamRowsKernel);
        setRowSteps = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, int>(SetRowStepsKernel);
        count = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int>(CountKernel);
        topK = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>(TopKKernel);
    }

    /// <summary>
    /// The accelerator for accelerator = cuda, opencl or ilgpu-cpu; for auto, CUDA if a device is
    /// found, else an OpenCL GPU, else null (the SIMD backend). `reason` says what was found.
    /// </summary>
    public static IlgpuKernels? Create(string choice, out string reason)
    {
        if (choice == "ilgpu-cpu")
        {
            // Two threads per warp, one warp per group: fine-grained kernels run ~13× faster on ILGPU's CPU simulator.
            var cpuContext = Context.Create(b => b.CPU(new CPUDevice(2, 1, Environment.ProcessorCount)).EnableAlgorithms());
            reason = "accelerator 'ilgpu-cpu': ILGPU's CPU accelerator (slow; for checking the kernels)";
            return new IlgpuKernels(cpuContext, cpuContext.GetCPUDevice(0).CreateAccelerator(cpuContext));
        }
        // EnableAlgorithms: exp, log and sqrt for the PTX and OpenCL backends.
        var context = Context.Create(b => b.Cuda().OpenCL().EnableAlgorithms());
        var cuda = context.Devices.OfType<CudaDevice>().ToArray();
        var opencl = context.Devices.OfType<CLDevice>().Where(d => d.DeviceType == CLDeviceType.CL_DEVICE_TYPE_GPU).ToArray();
        var found = $"found {cuda.Length} CUDA and {opencl.Length} OpenCL GPU device(s)" +
                    string.Concat(cuda.Select(d => $"; CUDA: {d.Name}")) + string.Concat(opencl.Select(d => $"; OpenCL: {d.Name}"));
        Device? device = choice switch
        {
            "cuda" => cuda.FirstOrDefault(),
            "opencl" => opencl.FirstOrDefault(),
            _ => (Device?)cuda.FirstOrDefault() ?? opencl.FirstOrDefault(),
        };
        if (device == null)
        {
            context.Dispose();
            if (choice != "auto")
                throw new PipelineError($"accelerator '{choice}' asked for, but {found}");
            reason = $"accelerator 'auto': {found}, so the SIMD CPU backend";
            return null;
        }
        reason = $"accelerator '{choice}': {found}; using {device.Name}";
        return new IlgpuKernels(context, device.CreateAccelerator(context));
    }

    public void Dispose()
    {
        logitRows?.Dispose();
        chunkStats?.Dispose();
        densePartials?.Dispose();
        noFloats.Dispose();
        noInts.Dispose();
        accelerator.Dispose();
        context.Dispose();
    }

    // ---- memory ----

    /// <summary>Device memory: an owning buffer, or a slice of one.</summary>
    sealed class IlgpuBuffer<T>(MemoryBuffer1D<T, Stride1D.Dense>? owner, ArrayView<T> view, int length) : DeviceBuffer<T> where T : unmanaged
    {
        public ArrayView<T> View { get; } = view;
        public override int Length { get; } = length;

        public override DeviceBuffer<T> Slice(int start, int length)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(start + length, Length);
            return new IlgpuBuffer<T>(null, View.SubView(start, Math.Max(1, length)), length);
        }

        public override void Dispose() => owner?.Dispose();
    }

    static ArrayView<T> V<T>(DeviceBuffer<T> buffer) where T : unmanaged => ((IlgpuBuffer<T>)buffer).View;

    public DeviceBuffer<T> Allocate<T>(int length) where T : unmanaged
    {
        // ILGPU refuses empty buffers: an empty one holds one unused element.
        var buffer = accelerator.Allocate1D<T>(Math.Max(1, length));
        buffer.MemSetToZero();
        return new IlgpuBuffer<T>(buffer, buffer.View, length);
    }

    public DeviceBuffer<T> Upload<T>(T[] data) where T : unmanaged
    {
        var buffer = Allocate<T>(data.Length);
        CopyFromHost<T>(data, buffer);
        return buffer;
    }

    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> target) where T : unmanaged
    {
        if (!source.IsEmpty)
            V(target).SubView(0, source.Length).CopyFromCPU(source);
    }

    public void CopyToHost<T>(DeviceBuffer<T> source, Span<T> target) where T : unmanaged
    {
        accelerator.Synchronize();
        if (!target.IsEmpty)
            V(source).SubView(0, target.Length).CopyToCPU(target);
    }

    /// <summary>The first `length` floats of an op's scratch buffer, grown (never shrunk) on demand.</summary>
    ArrayView<float> Scratch(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, long length)
    {
        if (buffer == null || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = accelerator.Allocate1D<float>(length);
        }
        return buffer.View.SubView(0, length);
    }

    ArrayView<float> Optional(DeviceBuffer<float>? buffer) => buffer == null ? noFloats.View : V(buffer);
    ArrayView<int> Optional(DeviceBuffer<int>? buffer) => buffer == null ? noInts.View : V(buffer);

    // ---- batch assembly ----

    readonly Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<int>> gatherInts;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>> gatherFloats;
    readonly Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> oneHot;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int> toColumn;

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
            gatherInts(count, V(source), V(rows), V(target));
    }

    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> rows, int count, DeviceBuffer<float> target)
    {
        if (count > 0)
            gatherFloats(count, V(source), V(rows), V(target));
    }

    public void OneHot(DeviceBuffer<int> column, DeviceBuffer<int> rows, int count, int depth, DeviceBuffer<float> x, int xStride, int offset)
    {
        if (count * depth > 0)
            oneHot(count * depth, V(column), V(rows), V(x), depth, xStride, offset);
    }

    public void CopyToColumn(DeviceBuffer<float> values, DeviceBuffer<int> rows, int count, DeviceBuffer<float> x, int xStride, int offset)
    {
        if (count > 0)
            toColumn(count, V(values), V(rows), V(x), xStride, offset);
    }

    // ---- dense layers ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> denseForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int> denseGradPartials;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> denseGradSum;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> denseInput;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>> relu;

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
            denseForward(rows * outDim, V(x), V(w), V(b), V(y), inDim, outDim, relu ? 1 : 0);
    }

    MemoryBuffer1D<float, Stride1D.Dense>? densePartials;

    public void DenseBackward(DeviceBuffer<float> x, int rows, int inDim, DeviceBuffer<float> w, int outDim, DeviceBuffer<float> dy,
        DeviceBuffer<float> dw, DeviceBuffer<float> db, DeviceBuffer<float>? dx)
    {
        var width = (inDim + 1) * outDim;
        var partials = Scratch(ref densePartials, (long)DenseGradChunks * width);
        var chunkLength = Math.Max(1, (rows + DenseGradChunks - 1) / DenseGradChunks);
        denseGradPartials(DenseGradChunks * width, V(x), V(dy), partials, rows, inDim, outDim, chunkLength);
        denseGradSum(width, partials, V(dw), V(db), inDim, outDim, DenseGradChunks);
        if (dx != null && rows > 0)
            denseInput(rows * inDim, V(w), V(dy), V(dx), inDim, outDim);
    }

    public void ReluBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, int count)
    {
        if (count > 0)
            relu(count, V(y), V(dy));
    }

    // ---- embeddings ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> gather;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> rowGradients;

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
            gather(count * dim, V(table), V(column), V(rows), V(x), dim, xStride, offset);
    }

    public void EmbeddingRowGradients(DeviceBuffer<float> dx, int dxStride, int offset, int dim, RowGroups groups, DeviceBuffer<float> grad)
    {
        if (groups.Count > 0)
            rowGradients(groups.Count * dim, V(dx), V(groups.Rows), V(groups.Starts), V(groups.Positions), V(grad), dim, dxStride, offset);
    }

    // ---- in-batch softmax ----

    // The logits matrix is stored column-major, element (i, j) at l[j·rows + i], and the row-wise
    // softmax runs in three parallel phases over (chunk of columns, row) with the row index fastest:
    // the threads of a warp then read adjacent addresses, and a batch of 2048 rows gives 64k threads
    // instead of 2048 serial row walks.
    const int SoftmaxChunks = 32;

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, float, int> logits;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> chunkMaxSum;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> rowLoss;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, float> softmaxGradient;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> gradQ;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> gradC;

    /// <summary>l(i,j) = (q_i·c_j)/τ − offset_j; −∞ for an accidental hit (flags: 1 = offset given, 2 = ids given).</summary>
    static void LogitsKernel(Index1D index, ArrayView<float> q, ArrayView<float> c, ArrayView<float> offset, ArrayView<int> ids,
        ArrayView<float> l, int rows, int dim, float invTemperature, int flags)
    {
        var j = index / rows;
        var i = index % rows;
        var s = 0f;
        for (var d = 0; d < dim; d++)
            s += q[i * dim + d] * c[j * dim + d];
        s *= invTemperature;
        if ((flags & 1) != 0)
            s -= offset[j];
        if ((flags & 2) != 0 && j != i && ids[j] == ids[i])
            s = float.NegativeInfinity;
        l[index] = s;
    }

    /// <summary>
    /// Thread (chunk k, row i): over the columns j of chunk k, max[k,i] = max_j l(i,j) and
    /// sum[k,i] = Σ_j exp(l(i,j) − max[k,i]) (0 when the whole chunk is −∞: accidental hits).
    /// </summary>
    static void ChunkMaxSumKernel(Index1D index, ArrayView<float> l, ArrayView<float> chunkMax, ArrayView<float> chunkSum, int rows, int chunkLength)
    {
        var k = index / rows;
        var i = index % rows;
        var end = Math.Min(rows, (k + 1) * chunkLength);
        var max = float.NegativeInfinity;
        for (var j = k * chunkLength; j < end; j++)
            max = MathF.Max(max, l[j * rows + i]);
        var sum = 0f;
        if (max != float.NegativeInfinity)
        {
            for (var j = k * chunkLength; j < end; j++)
                sum += MathF.Exp(l[j * rows + i] - max);
        }
        chunkMax[index] = max;
        chunkSum[index] = sum;
    }

    /// <summary>
    /// Row i: the chunks combined, max_i and sum_i = Σ_k sum[k,i]·exp(max[k,i] − max_i) (kept in the
    /// chunk-0 slots for the gradient phase); loss_i = max_i + log(sum_i) − l(i,i).
    /// </summary>
    static void RowLossKernel(Index1D i, ArrayView<float> l, ArrayView<float> chunkMax, ArrayView<float> chunkSum, ArrayView<float> loss, int rows, int chunks)
    {
        var max = float.NegativeInfinity;
        for (var k = 0; k < chunks; k++)
            max = MathF.Max(max, chunkMax[k * rows + i]);
        var sum = 0f;
        for (var k = 0; k < chunks; k++)
            sum += chunkSum[k * rows + i] * MathF.Exp(chunkMax[k * rows + i] - max);
        loss[i] = max + MathF.Log(sum) - l[i * rows + i];
        chunkMax[i] = max;
        chunkSum[i] = sum;
    }

    /// <summary>Thread (chunk k, row i): the chunk's logits become g(i,j) = (softmax − onehot(i)) / τ, subnormals flushed.</summary>
    static void SoftmaxGradientKernel(Index1D index, ArrayView<float> l, ArrayView<float> rowMaxSum, int rows, int chunkLength, float invTemperature)
    {
        var k = index / rows;
        var i = index % rows;
        var max = rowMaxSum[i];
        var scale = invTemperature / rowMaxSum[rows * SoftmaxChunks + i];
        var end = Math.Min(rows, (k + 1) * chunkLength);
        for (var j = k * chunkLength; j < end; j++)
        {
            var g = MathF.Exp(l[j * rows + i] - max) * scale;
            g = Flush(g);
            l[j * rows + i] = j == i ? g - invTemperature : g;
        }
    }

    /// <summary>dq[i,d] = Σ_j g(i,j)·c[j,d].</summary>
    static void GradQueryKernel(Index1D index, ArrayView<float> g, ArrayView<float> c, ArrayView<float> dq, int rows, int dim)
    {
        var i = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var j = 0; j < rows; j++)
            s += g[j * rows + i] * c[j * dim + d];
        dq[index] = s;
    }

    /// <summary>dc[j,d] = Σ_i g(i,j)·q[i,d].</summary>
    static void GradCandidateKernel(Index1D index, ArrayView<float> g, ArrayView<float> q, ArrayView<float> dc, int rows, int dim)
    {
        var j = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var i = 0; i < rows; i++)
            s += g[j * rows + i] * q[i * dim + d];
        dc[index] = s;
    }

    MemoryBuffer1D<float, Stride1D.Dense>? logitRows;
    MemoryBuffer1D<float, Stride1D.Dense>? chunkStats;

    public void InBatchSoftmax(DeviceBuffer<float> q, DeviceBuffer<float> c, int rows, int dim, DeviceBuffer<float>? columnOffset,
        float temperature, DeviceBuffer<int>? itemIds, DeviceBuffer<float> lossPerRow, DeviceBuffer<float> dq, DeviceBuffer<float> dc)
    {
        if (rows == 0)
            return;
        var l = Scratch(ref logitRows, (long)rows * rows);
        // Max and sum of each (chunk, row), chunk-major; the sums follow the maxima.
        var stats = Scratch(ref chunkStats, 2L * SoftmaxChunks * rows);
        var (chunkMax, chunkSum) = (stats.SubView(0, SoftmaxChunks * rows), stats.SubView(SoftmaxChunks * rows, SoftmaxChunks * rows));
        var chunkLength = (rows + SoftmaxChunks - 1) / SoftmaxChunks;
        var flags = (columnOffset == null ? 0 : 1) | (itemIds == null ? 0 : 2);
        var invTemperature = 1f / temperature;
        logits(rows * rows, V(q), V(c), Optional(columnOffset), Optional(itemIds), l, rows, dim, invTemperature, flags);
        chunkMaxSum(SoftmaxChunks * rows, l, chunkMax, chunkSum, rows, chunkLength);
        rowLoss(rows, l, chunkMax, chunkSum, V(lossPerRow), rows, SoftmaxChunks);
        softmaxGradient(SoftmaxChunks * rows, l, stats, rows, chunkLength, invTemperature);
        gradQ(rows * dim, l, V(c), V(dq), rows, dim);
        gradC(rows * dim, l, V(q), V(dc), rows, dim);
    }

    // ---- AdamW ----

    public struct AdamConstants
    {
        public float Beta1, Beta2, Epsilon, DecayTouched, DecayUntouched, LrT;
    }

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamConstants> adam;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AdamConstants, int, int> adamRows;
    readonly Action<Index1D, ArrayView<int>, ArrayView<int>, int> setRowSteps;

    static float Flush(float x) => MathF.Abs(x) < 1.17549435E-38f ? 0f : x;

    /// <summary>One Adam step on element i, the same operations in the same order as SimdKernels.AdamStep (hasGradient 0: g = 0).</summary>
    static void Step(ref float w, ref float m, ref float v, float g, float lrT, float decay, AdamConstants k)
    {
        if (decay != 0)
            w -= decay * w;
        m = Flush(k.Beta1 * m + (1 - k.Beta1) * g);
        v = Flush(k.Beta2 * v + (1 - k.Beta2) * (g * g));
        w -= lrT * m / (MathF.Sqrt(v) + k.Epsilon);
    }

    static void AdamKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamConstants k)
    {
        float wi = w[i], mi = m[i], vi = v[i];
        Step(ref wi, ref mi, ref vi, g[i], k.LrT, k.DecayTouched, k);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }

    /// <summary>
    /// Element (u, d) of table row rows[u]: replays the zero-gradient steps rowStep[row]+1..(step − 1)
    /// (decay DecayUntouched), then, when withGradient is 1, step `step` with g (decay DecayTouched).
    /// rowStep is only read here; <see cref="SetRowStepsKernel"/> advances it afterwards (every thread of a row reads it).
    /// </summary>
    static void AdamRowsKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<int> rows,
        ArrayView<int> rowStep, ArrayView<float> lrT, AdamConstants k, int width, int stepAndFlag)
    {
        var step = stepAndFlag >> 1;
        var withGradient = (stepAndFlag & 1) == 1;
        var row = rows[i / width];
        var at = row * width + i % width;
        float wi = w[at], mi = m[at], vi = v[at];
        var last = withGradient ? step - 1 : step;
        for (var s = rowStep[row] + 1; s <= last; s++)
            Step(ref wi, ref mi, ref vi, 0f, lrT[s], k.DecayUntouched, k);
        if (withGradient)
            Step(ref wi, ref mi, ref vi, g[at], lrT[step], k.DecayTouched, k);
        w[at] = wi;
        m[at] = mi;
        v[at] = vi;
    }

    static void SetRowStepsKernel(Index1D u, ArrayView<int> rows, ArrayView<int> rowStep, int step) => rowStep[rows[u]] = step;

    public void AdamW(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, float lrT,
        float beta1, float beta2, float epsilon, float decay)
    {
        if (count > 0)
            adam(count, V(w), V(g), V(m), V(v), new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decay, LrT = lrT });
    }

    void UpdateRows(DeviceBuffer<float> w, DeviceBuffer<float>? g, DeviceBuffer<float> m, DeviceBuffer<float> v, int width, DeviceBuffer<int> rows,
        DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, AdamConstants k)
    {
        if (rows.Length == 0)
            return;
        adamRows(rows.Length * width, V(w), Optional(g), V(m), V(v), V(rows), V(rowStep), V(lrTByStep), k, width, (step << 1) | (g == null ? 0 : 1));
        setRowSteps(rows.Length, V(rows), V(rowStep), step);
    }

    public void AdamWRows(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth,
        DeviceBuffer<int> rows, DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2, float epsilon,
        float decayTouched, float decayUntouched) =>
        UpdateRows(w, g, m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decayTouched, DecayUntouched = decayUntouched });

    public void AdamWCatchUp(DeviceBuffer<float> w, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth, DeviceBuffer<int> rows,
        DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2, float epsilon, float decayUntouched) =>
        UpdateRows(w, null, m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayUntouched = decayUntouched });

    // ---- rank counting ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int> count;

    /// <summary>counts[i] = #{ j : q_i·c_j > q_i·p_i }, both dot products by the same loop; −1 when q_i·p_i is not finite.</summary>
    static void CountKernel(Index1D i, ArrayView<float> q, ArrayView<float> c, ArrayView<float> p, ArrayView<int> counts, int candidates, int dim)
    {
        var threshold = 0f;
        for (var d = 0; d < dim; d++)
            threshold += q[i * dim + d] * p[i * dim + d];
        var n = 0;
        for (var j = 0; j < candidates; j++)
        {
            var s = 0f;
            for (var d = 0; d < dim; d++)
                s += q[i * dim + d] * c[j * dim + d];
            if (s > threshold)
                n++;
        }
        // threshold − threshold is 0 exactly when the threshold is finite (NaN and ±∞ give NaN).
        counts[i] = threshold - threshold == 0 ? n : -1;
    }

    public void CountScoresAbove(DeviceBuffer<float> queries, int queryCount, DeviceBuffer<float> candidates, int candidateCount, int dim,
        DeviceBuffer<float> positives, DeviceBuffer<int> counts)
    {
        if (queryCount > 0)
            count(queryCount, V(queries), V(candidates), V(positives), V(counts), candidateCount, dim);
    }

    // ---- top-k ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int> topK;

    static bool Worse(float scoreA, int indexA, float scoreB, int indexB) => scoreA < scoreB || (scoreA == scoreB && indexA > indexB);

    static void HeapPush(ArrayView<float> scores, ArrayView<int> indices, int count, float score, int index)
    {
        var at = count;
        while (at > 0)
        {
            var parent = (at - 1) / 2;
            if (!Worse(score, index, scores[parent], indices[parent]))
                break;
            scores[at] = scores[parent];
            indices[at] = indices[parent];
            at = parent;
        }
        scores[at] = score;
        indices[at] = index;
    }

    static void HeapReplaceRoot(ArrayView<float> scores, ArrayView<int> indices, int count, float score, int index)
    {
        var at = 0;
        var child = 1;
        while (child < count)
        {
            if (child + 1 < count && Worse(scores[child + 1], indices[child + 1], scores[child], indices[child]))
                child++;
            if (!Worse(scores[child], indices[child], score, index))
                break;
            scores[at] = scores[child];
            indices[at] = indices[child];
            at = child;
            child = 2 * at + 1;
        }
        scores[at] = score;
        indices[at] = index;
    }

    /// <summary>
    /// Thread i: a bounded min-heap of query i's best candidates kept in its own output rows (the same
    /// heap as the SIMD backend's TopKHeap, so the same scores select the same candidates), then heap-sorted best first.
    /// </summary>
    static void TopKKernel(Index1D i, ArrayView<float> q, ArrayView<float> c, ArrayView<int> indices, ArrayView<float> scores,
        int candidates, int dim, int k)
    {
        var heapScores = scores.SubView(i * k, k);
        var heapIndices = indices.SubView(i * k, k);
        for (var j = 0; j < candidates; j++)
        {
            var s = 0f;
            for (var d = 0; d < dim; d++)
                s += q[i * dim + d] * c[j * dim + d];
            if (XMath.IsNaN(s))
                s = float.NegativeInfinity;
            if (j < k)
                HeapPush(heapScores, heapIndices, j, s, j);
            else if (s > heapScores[0])
                HeapReplaceRoot(heapScores, heapIndices, k, s, j);
        }
        for (var end = k - 1; end > 0; end--)
        {
            var rootScore = heapScores[0];
            var rootIndex = heapIndices[0];
            HeapReplaceRoot(heapScores, heapIndices, end, heapScores[end], heapIndices[end]);
            heapScores[end] = rootScore;
            heapIndices[end] = rootIndex;
        }
    }

    public void TopK(DeviceBuffer<float> queries, int queryCount, DeviceBuffer<float> candidates, int candidateCount, int dim, int k,
        DeviceBuffer<int> indices, DeviceBuffer<float> scores)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, candidateCount);
        if (queryCount > 0 && k > 0)
            topK(queryCount, V(queries), V(candidates), V(indices), V(scores), candidateCount, dim, k);
    }
}
