using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace TwoTower.Kernels;

/// <summary>
/// The ops of <see cref="IKernels"/> as ILGPU kernels (CUDA, OpenCL, or ILGPU's CPU accelerator for
/// checking them without a GPU). Each kernel is a static method over explicit views, one thread
/// per output element, with the same float operations as the SIMD backend where it matters (the Adam
/// step order, flush-to-zero); the rank counting scores the positive and the candidates with one
/// loop, so ties are exact within the backend.
/// The seam passes host spans, so every call copies its inputs in and its outputs out: correct, and
/// fast where the arithmetic dominates (in-batch softmax, rank counting); keeping the weights on the
/// device across an epoch needs buffer handles in the seam (the next step).
/// </summary>
public sealed class IlgpuKernels : IKernels, IDisposable
{
    readonly Context context;
    readonly Accelerator accelerator;
    readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> floatBuffers = new();
    readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> intBuffers = new();

    public string Name => $"ilgpu {accelerator.AcceleratorType} ({accelerator.Name})";

    IlgpuKernels(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
        denseForward = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(DenseForwardKernel);
        denseWeights = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(DenseWeightGradKernel);
        denseBias = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(DenseBiasGradKernel);
        denseInput = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(DenseInputGradKernel);
        relu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ReluBackwardKernel);
        gather = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>(GatherKernel);
        scatter = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int>(ScatterAddKernel);
        logits = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, float, int>(LogitsKernel);
        softmax = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float>(SoftmaxRowKernel);
        gradQ = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(GradQueryKernel);
        gradC = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(GradCandidateKernel);
        adam = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamConstants>(AdamKernel);
        adamRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, AdamConstants, int, int>(AdamRowsKernel);
        count = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int>(CountKernel);
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
        foreach (var b in floatBuffers.Values)
            b.Dispose();
        foreach (var b in intBuffers.Values)
            b.Dispose();
        accelerator.Dispose();
        context.Dispose();
    }

    // ---- buffers: reused per slot, grown on demand ----

    ArrayView<float> Floats(string slot, int length)
    {
        if (!floatBuffers.TryGetValue(slot, out var buffer) || buffer.Length < Math.Max(1, length))
        {
            buffer?.Dispose();
            floatBuffers[slot] = buffer = accelerator.Allocate1D<float>(Math.Max(1, length));
        }
        return buffer.View.SubView(0, Math.Max(1, length));
    }

    ArrayView<int> Ints(string slot, int length)
    {
        if (!intBuffers.TryGetValue(slot, out var buffer) || buffer.Length < Math.Max(1, length))
        {
            buffer?.Dispose();
            intBuffers[slot] = buffer = accelerator.Allocate1D<int>(Math.Max(1, length));
        }
        return buffer.View.SubView(0, Math.Max(1, length));
    }

    ArrayView<float> Upload(string slot, ReadOnlySpan<float> data)
    {
        var view = Floats(slot, data.Length);
        if (!data.IsEmpty)
            view.SubView(0, data.Length).CopyFromCPU(data);
        return view;
    }

    ArrayView<int> Upload(string slot, ReadOnlySpan<int> data)
    {
        var view = Ints(slot, data.Length);
        if (!data.IsEmpty)
            view.SubView(0, data.Length).CopyFromCPU(data);
        return view;
    }

    void Download(ArrayView<float> view, Span<float> target)
    {
        accelerator.Synchronize();
        if (!target.IsEmpty)
            view.SubView(0, target.Length).CopyToCPU(target);
    }

    // ---- dense layers ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> denseForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> denseWeights;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> denseBias;
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

    /// <summary>dw[k,o] = Σ_r x[r,k]·dy[r,o].</summary>
    static void DenseWeightGradKernel(Index1D i, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw, int rows, int inDim, int outDim)
    {
        var k = i / outDim;
        var o = i % outDim;
        var s = 0f;
        for (var r = 0; r < rows; r++)
            s += x[r * inDim + k] * dy[r * outDim + o];
        dw[i] = s;
    }

    /// <summary>db[o] = Σ_r dy[r,o].</summary>
    static void DenseBiasGradKernel(Index1D o, ArrayView<float> dy, ArrayView<float> db, int rows, int outDim)
    {
        var s = 0f;
        for (var r = 0; r < rows; r++)
            s += dy[r * outDim + o];
        db[o] = s;
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

    public void DenseForward(ReadOnlySpan<float> x, int rows, int inDim, ReadOnlySpan<float> w, ReadOnlySpan<float> b, int outDim, bool relu, Span<float> y)
    {
        var dy = Floats("y", rows * outDim);
        denseForward(rows * outDim, Upload("x", x[..(rows * inDim)]), Upload("w", w[..(inDim * outDim)]), Upload("b", b[..outDim]), dy, inDim, outDim, relu ? 1 : 0);
        Download(dy, y[..(rows * outDim)]);
    }

    public void DenseBackward(ReadOnlySpan<float> x, int rows, int inDim, ReadOnlySpan<float> w, int outDim, ReadOnlySpan<float> dy,
        Span<float> dw, Span<float> db, Span<float> dx)
    {
        var vx = Upload("x", x[..(rows * inDim)]);
        var vdy = Upload("dy", dy[..(rows * outDim)]);
        var vdw = Floats("dw", inDim * outDim);
        var vdb = Floats("db", outDim);
        denseWeights(inDim * outDim, vx, vdy, vdw, rows, inDim, outDim);
        denseBias(outDim, vdy, vdb, rows, outDim);
        Download(vdw, dw[..(inDim * outDim)]);
        Download(vdb, db[..outDim]);
        if (dx.IsEmpty)
            return;
        var vdx = Floats("dx", rows * inDim);
        denseInput(rows * inDim, Upload("w", w[..(inDim * outDim)]), vdy, vdx, inDim, outDim);
        Download(vdx, dx[..(rows * inDim)]);
    }

    public void ReluBackward(ReadOnlySpan<float> y, Span<float> dy)
    {
        var vdy = Upload("dy", dy);
        relu(dy.Length, Upload("y", y[..dy.Length]), vdy);
        Download(vdy, dy);
    }

    // ---- embeddings ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int> gather;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int, int> scatter;

    /// <summary>x[r, offset + d] = table[ids[r], d].</summary>
    static void GatherKernel(Index1D i, ArrayView<float> table, ArrayView<int> ids, ArrayView<float> x, int dim, int stride, int offset)
    {
        var r = i / dim;
        var d = i % dim;
        x[r * stride + offset + d] = table[ids[r] * dim + d];
    }

    /// <summary>
    /// Deterministic scatter-add: thread (u, d) adds, in batch order, the dx rows of the positions
    /// grouped under unique row u (positions[starts[u]..starts[u+1])) to grad[rows[u], d].
    /// </summary>
    static void ScatterAddKernel(Index1D i, ArrayView<float> grad, ArrayView<int> uniqueRows, ArrayView<int> starts, ArrayView<int> positions,
        ArrayView<float> dx, int dim, int stride, int offset)
    {
        var u = i / dim;
        var d = i % dim;
        var s = grad[uniqueRows[u] * dim + d];
        for (var p = starts[u]; p < starts[u + 1]; p++)
            s += dx[positions[p] * stride + offset + d];
        grad[uniqueRows[u] * dim + d] = s;
    }

    public void EmbeddingGather(ReadOnlySpan<float> table, int dim, ReadOnlySpan<int> ids, Span<float> x, int xStride, int offset)
    {
        var vx = Upload("gx", x[..(ids.Length * xStride)]);
        gather(ids.Length * dim, Upload("table", table), Upload("ids", ids), vx, dim, xStride, offset);
        Download(vx, x[..(ids.Length * xStride)]);
    }

    public void EmbeddingScatterAdd(Span<float> grad, int dim, ReadOnlySpan<int> ids, ReadOnlySpan<float> dx, int dxStride, int offset)
    {
        // Group positions by row on the host (a counting sort): the sums then need no atomics.
        var groups = ids.ToArray().Select((row, position) => (row, position)).GroupBy(p => p.row).OrderBy(g => g.Key).ToArray();
        var uniqueRows = groups.Select(g => g.Key).ToArray();
        var starts = new int[groups.Length + 1];
        for (var g = 0; g < groups.Length; g++)
            starts[g + 1] = starts[g] + groups[g].Count();
        var positions = groups.SelectMany(g => g.Select(p => p.position)).ToArray();
        var vgrad = Upload("grad", grad);
        scatter(uniqueRows.Length * dim, vgrad, Upload("rows", uniqueRows), Upload("starts", starts), Upload("positions", positions),
            Upload("sdx", dx[..(ids.Length * dxStride)]), dim, dxStride, offset);
        Download(vgrad, grad);
    }

    // ---- in-batch softmax ----

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, float, int> logits;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, float> softmax;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> gradQ;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> gradC;

    /// <summary>l[i,j] = (q_i·c_j)/τ − offset_j; −∞ for an accidental hit (flags: 1 = offset given, 2 = ids given).</summary>
    static void LogitsKernel(Index1D index, ArrayView<float> q, ArrayView<float> c, ArrayView<float> offset, ArrayView<int> ids,
        ArrayView<float> l, int rows, int dim, float invTemperature, int flags)
    {
        var i = index / rows;
        var j = index % rows;
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

    /// <summary>Row i: loss = logsumexp − l[i,i] (into loss[i]); the row becomes (softmax − onehot(i)) / τ.</summary>
    static void SoftmaxRowKernel(Index1D i, ArrayView<float> l, ArrayView<float> loss, int rows, float invTemperature)
    {
        var row = l.SubView(i * rows, rows);
        var max = float.NegativeInfinity;
        for (var j = 0; j < rows; j++)
            max = MathF.Max(max, row[j]);
        var sum = 0f;
        for (var j = 0; j < rows; j++)
            sum += MathF.Exp(row[j] - max);
        loss[i] = max + MathF.Log(sum) - row[i];
        for (var j = 0; j < rows; j++)
        {
            var g = MathF.Exp(row[j] - max) * (invTemperature / sum);
            row[j] = MathF.Abs(g) < 1.17549435E-38f ? 0 : g;
        }
        row[i] -= invTemperature;
    }

    /// <summary>dq[i,d] = Σ_j g[i,j]·c[j,d].</summary>
    static void GradQueryKernel(Index1D index, ArrayView<float> g, ArrayView<float> c, ArrayView<float> dq, int rows, int dim)
    {
        var i = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var j = 0; j < rows; j++)
            s += g[i * rows + j] * c[j * dim + d];
        dq[index] = s;
    }

    /// <summary>dc[j,d] = Σ_i g[i,j]·q[i,d].</summary>
    static void GradCandidateKernel(Index1D index, ArrayView<float> g, ArrayView<float> q, ArrayView<float> dc, int rows, int dim)
    {
        var j = index / dim;
        var d = index % dim;
        var s = 0f;
        for (var i = 0; i < rows; i++)
            s += g[i * rows + j] * q[i * dim + d];
        dc[index] = s;
    }

    public void InBatchSoftmax(ReadOnlySpan<float> q, ReadOnlySpan<float> c, int rows, int dim, ReadOnlySpan<float> columnOffset,
        float temperature, ReadOnlySpan<int> itemIds, Span<float> lossPerRow, Span<float> dq, Span<float> dc)
    {
        var vq = Upload("q", q[..(rows * dim)]);
        var vc = Upload("c", c[..(rows * dim)]);
        var vl = Floats("logits", rows * rows);
        var vloss = Floats("loss", rows);
        var flags = (columnOffset.IsEmpty ? 0 : 1) | (itemIds.IsEmpty ? 0 : 2);
        logits(rows * rows, vq, vc, Upload("offset", columnOffset), Upload("items", itemIds), vl, rows, dim, 1f / temperature, flags);
        softmax(rows, vl, vloss, rows, 1f / temperature);
        var vdq = Floats("dq", rows * dim);
        var vdc = Floats("dc", rows * dim);
        gradQ(rows * dim, vl, vc, vdq, rows, dim);
        gradC(rows * dim, vl, vq, vdc, rows, dim);
        Download(vloss, lossPerRow[..rows]);
        Download(vdq, dq[..(rows * dim)]);
        Download(vdc, dc[..(rows * dim)]);
    }

    // ---- AdamW ----

    public struct AdamConstants
    {
        public float Beta1, Beta2, Epsilon, DecayTouched, DecayUntouched, LrT;
    }

    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamConstants> adam;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, AdamConstants, int, int> adamRows;

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
    /// Element (u, d) of the compact rows: replays the zero-gradient steps first[u]..(step − 1)
    /// (decay DecayUntouched), then, when withGradient is 1, step `step` with g (decay DecayTouched).
    /// </summary>
    static void AdamRowsKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<int> first,
        ArrayView<float> lrT, AdamConstants k, int width, int stepAndFlag)
    {
        var step = stepAndFlag >> 1;
        var withGradient = (stepAndFlag & 1) == 1;
        float wi = w[i], mi = m[i], vi = v[i];
        var last = withGradient ? step - 1 : step;
        for (var s = first[i / width]; s <= last; s++)
            Step(ref wi, ref mi, ref vi, 0f, lrT[s], k.DecayUntouched, k);
        if (withGradient)
            Step(ref wi, ref mi, ref vi, g[i], lrT[step], k.DecayTouched, k);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }

    public void AdamW(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        var (vw, vm, vv) = (Upload("aw", w), Upload("am", m), Upload("av", v));
        adam(w.Length, vw, Upload("ag", g[..w.Length]), vm, vv,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decay, LrT = lrT });
        Download(vw, w);
        Download(vm, m);
        Download(vv, v);
    }

    /// <summary>The listed rows are copied into compact buffers, updated on the device and copied back.</summary>
    void UpdateRows(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, int width, ReadOnlySpan<int> rows, Span<int> rowStep,
        int step, ReadOnlySpan<float> lrTByStep, AdamConstants k, bool withGradient)
    {
        if (rows.IsEmpty)
            return;
        var n = rows.Length * width;
        var (cw, cg, cm, cv) = (new float[n], new float[n], new float[n], new float[n]);
        var first = new int[rows.Length];
        for (var u = 0; u < rows.Length; u++)
        {
            var at = rows[u] * width;
            w.Slice(at, width).CopyTo(cw.AsSpan(u * width));
            m.Slice(at, width).CopyTo(cm.AsSpan(u * width));
            v.Slice(at, width).CopyTo(cv.AsSpan(u * width));
            if (withGradient)
                g.Slice(at, width).CopyTo(cg.AsSpan(u * width));
            first[u] = rowStep[rows[u]] + 1;
        }
        var (vw, vm, vv) = (Upload("rw", cw), Upload("rm", cm), Upload("rv", cv));
        adamRows(n, vw, Upload("rg", cg), vm, vv, Upload("rfirst", first), Upload("lrT", lrTByStep[..(step + 1)]), k, width,
            (step << 1) | (withGradient ? 1 : 0));
        Download(vw, cw);
        Download(vm, cm);
        Download(vv, cv);
        for (var u = 0; u < rows.Length; u++)
        {
            var at = rows[u] * width;
            cw.AsSpan(u * width, width).CopyTo(w.Slice(at, width));
            cm.AsSpan(u * width, width).CopyTo(m.Slice(at, width));
            cv.AsSpan(u * width, width).CopyTo(v.Slice(at, width));
            rowStep[rows[u]] = step;
        }
    }

    public void AdamWRows(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, int rowWidth, ReadOnlySpan<int> rows,
        Span<int> rowStep, int step, ReadOnlySpan<float> lrTByStep, float beta1, float beta2, float epsilon, float decayTouched, float decayUntouched) =>
        UpdateRows(w, g, m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayTouched = decayTouched, DecayUntouched = decayUntouched }, true);

    public void AdamWCatchUp(Span<float> w, Span<float> m, Span<float> v, int rowWidth, ReadOnlySpan<int> rows, Span<int> rowStep, int step,
        ReadOnlySpan<float> lrTByStep, float beta1, float beta2, float epsilon, float decayUntouched) =>
        UpdateRows(w, [], m, v, rowWidth, rows, rowStep, step, lrTByStep,
            new AdamConstants { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, DecayUntouched = decayUntouched }, false);

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

    public void CountScoresAbove(ReadOnlySpan<float> queries, int queryCount, ReadOnlySpan<float> candidates, int candidateCount, int dim,
        ReadOnlySpan<float> positives, Span<int> counts)
    {
        var vcounts = Ints("counts", queryCount);
        count(queryCount, Upload("cq", queries[..(queryCount * dim)]), Upload("cc", candidates[..(candidateCount * dim)]),
            Upload("positives", positives[..(queryCount * dim)]), vcounts, candidateCount, dim);
        accelerator.Synchronize();
        vcounts.SubView(0, queryCount).CopyToCPU(counts[..queryCount]);
    }
}
