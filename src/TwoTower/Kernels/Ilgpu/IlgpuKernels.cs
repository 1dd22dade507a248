using ILGPU;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

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
public sealed partial class IlgpuKernels : IKernels
{
    readonly Context context;
    readonly Accelerator accelerator;
    // Stand-ins for an absent optional operand (no logQ offsets, no item ids): a kernel takes a view either way.
    readonly MemoryBuffer1D<float, Stride1D.Dense> noFloats;
    readonly MemoryBuffer1D<int, Stride1D.Dense> noInts;

    public string Name => $"ilgpu {accelerator.AcceleratorType} ({accelerator.Name})";

    /// <summary>ILGPU's CPU accelerator (accelerator = ilgpu-cpu): a simulator, for correctness only.</summary>
    public bool IsCpuAccelerator => accelerator.AcceleratorType == AcceleratorType.CPU;

    /// <summary>Takes ownership of the context and accelerator (see <see cref="Backend"/>, which picks the device).</summary>
    public IlgpuKernels(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
        noFloats = accelerator.Allocate1D<float>(1);
        noInts = accelerator.Allocate1D<int>(1);
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

    /// <summary>Subnormal floats flushed to zero, as the SIMD backend (and TensorFlow's CPU kernels) do.</summary>
    static float Flush(float x) => MathF.Abs(x) < 1.17549435E-38f ? 0f : x;

    // ---- kernel loading ----
    // Each op family's file declares a launcher per kernel as `Action<Index1D, …> XLauncher =>
    // Load(ref field, XKernel)`: compiled for the accelerator on first use, then kept.

    Action<Index1D, T1, T2> Load<T1, T2>(ref Action<Index1D, T1, T2>? launcher, Action<Index1D, T1, T2> kernel)
        where T1 : struct where T2 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3> Load<T1, T2, T3>(ref Action<Index1D, T1, T2, T3>? launcher, Action<Index1D, T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(ref Action<Index1D, T1, T2, T3, T4, T5>? launcher,
        Action<Index1D, T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6> Load<T1, T2, T3, T4, T5, T6>(ref Action<Index1D, T1, T2, T3, T4, T5, T6>? launcher,
        Action<Index1D, T1, T2, T3, T4, T5, T6> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6, T7> Load<T1, T2, T3, T4, T5, T6, T7>(ref Action<Index1D, T1, T2, T3, T4, T5, T6, T7>? launcher,
        Action<Index1D, T1, T2, T3, T4, T5, T6, T7> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8> Load<T1, T2, T3, T4, T5, T6, T7, T8>(
        ref Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8>? launcher, Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9>(
        ref Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9>? launcher, Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(
        ref Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>? launcher,
        Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct where T10 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);

    Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11> Load<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>(
        ref Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>? launcher,
        Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct where T10 : struct where T11 : struct =>
        launcher ??= accelerator.LoadAutoGroupedStreamKernel(kernel);
}
