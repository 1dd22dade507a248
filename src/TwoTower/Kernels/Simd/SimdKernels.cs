using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>
/// The CPU backend: managed SIMD (Vector256, FMA where the JIT finds it), blocked for registers,
/// parallel over a fixed number of row chunks so that the same thread count gives the same sums
/// in the same order (bit-identical results). The float64 references these are tested against
/// live in tests/TwoTower.Tests/Reference.cs.
/// </summary>
public sealed unsafe partial class SimdKernels(int threads) : IKernels
{
    public string Name => $"cpu-simd ({threads} threads)";

    public void Dispose() { }

    static void Ensure(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
            buffer = new float[length];
    }

    static Span<T> S<T>(DeviceBuffer<T> buffer) where T : unmanaged => ((HostBuffer<T>)buffer).Span;
    static Span<T> S<T>(DeviceBuffer<T>? buffer, int length) where T : unmanaged => buffer == null ? [] : S(buffer)[..length];

    // ---- memory: host arrays ----

    public DeviceBuffer<T> Allocate<T>(int length) where T : unmanaged => new HostBuffer<T>(new T[length], 0, length);

    public DeviceBuffer<T> Upload<T>(T[] data) where T : unmanaged => new HostBuffer<T>(data, 0, data.Length);

    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> target) where T : unmanaged => Copy(source, S(target));

    public void CopyToHost<T>(DeviceBuffer<T> source, Span<T> target) where T : unmanaged => Copy(S(source)[..target.Length], target);

    /// <summary>A buffer made by Upload is the caller's array: copying it onto itself is skipped.</summary>
    static void Copy<T>(ReadOnlySpan<T> source, Span<T> target)
    {
        if (!Unsafe.AreSame(ref MemoryMarshal.GetReference(source), ref MemoryMarshal.GetReference(target)))
            source.CopyTo(target);
    }

    /// <summary>Runs body over [0, count) split into 4 chunks per thread (rows are independent: any split gives the same result).</summary>
    void ForChunks(int count, Action<int, int> body)
    {
        var chunks = Math.Max(1, Math.Min(count / 64, threads * 4));
        if (chunks == 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads },
            c => body((int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks)));
    }

    /// <summary>y += a·x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a);
            ref var rx = ref MemoryMarshal.GetReference(x);
            ref var ry = ref MemoryMarshal.GetReference(y);
            for (; i + 8 <= x.Length; i += 8)
            {
                var vy = Vector256.LoadUnsafe(ref ry, (nuint)i);
                Vector256.FusedMultiplyAdd(va, Vector256.LoadUnsafe(ref rx, (nuint)i), vy).StoreUnsafe(ref ry, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
            y[i] += a * x[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var i = 0;
        var sum = 0f;
        if (Vector256.IsHardwareAccelerated && a.Length >= 8)
        {
            var acc = Vector256<float>.Zero;
            ref var ra = ref MemoryMarshal.GetReference(a);
            ref var rb = ref MemoryMarshal.GetReference(b);
            for (; i + 8 <= a.Length; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref ra, (nuint)i), Vector256.LoadUnsafe(ref rb, (nuint)i), acc);
            sum = Vector256.Sum(acc);
        }
        for (; i < a.Length; i++)
            sum += a[i] * b[i];
        return sum;
    }

    /// <summary>target[d·count + j] = rows[j·dim + d]: the column layout the register blocks read (<see cref="Block4x16"/>).</summary>
    static void Transpose(ReadOnlySpan<float> rows, int count, int dim, Span<float> target)
    {
        for (var j = 0; j < count; j++)
        for (var d = 0; d < dim; d++)
            target[d * count + j] = rows[j * dim + d];
    }

    const int RowBlock = 4;

    /// <summary>
    /// The register block shared by the logits, the softmax's dq and the rank counting: dot products of 4
    /// consecutive dim-wide rows q0[0..4) with 16 consecutive columns j..j+16 of a transposed
    /// dim×n matrix, accumulated d = 0..dim−1 by fused multiply-adds from 0 (8 accumulators): the
    /// chain of <see cref="ScoreDot"/>, so the same scores.
    /// </summary>
    readonly struct Block4x16
    {
        public readonly Vector256<float> R00, R01, R10, R11, R20, R21, R30, R31;

        Block4x16(Vector256<float> r00, Vector256<float> r01, Vector256<float> r10, Vector256<float> r11,
            Vector256<float> r20, Vector256<float> r21, Vector256<float> r30, Vector256<float> r31) =>
            (R00, R01, R10, R11, R20, R21, R30, R31) = (r00, r01, r10, r11, r20, r21, r30, r31);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Block4x16 Dot(float* q0, int dim, float* transposed, int n, int j)
        {
            Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
            for (var d = 0; d < dim; d++)
            {
                var c0 = Vector256.Load(transposed + (long)d * n + j);
                var c1 = Vector256.Load(transposed + (long)d * n + j + 8);
                var b0 = Vector256.Create(q0[d]);
                var b1 = Vector256.Create(q0[dim + d]);
                var b2 = Vector256.Create(q0[2 * dim + d]);
                var b3 = Vector256.Create(q0[3 * dim + d]);
                a00 = Vector256.FusedMultiplyAdd(b0, c0, a00);
                a01 = Vector256.FusedMultiplyAdd(b0, c1, a01);
                a10 = Vector256.FusedMultiplyAdd(b1, c0, a10);
                a11 = Vector256.FusedMultiplyAdd(b1, c1, a11);
                a20 = Vector256.FusedMultiplyAdd(b2, c0, a20);
                a21 = Vector256.FusedMultiplyAdd(b2, c1, a21);
                a30 = Vector256.FusedMultiplyAdd(b3, c0, a30);
                a31 = Vector256.FusedMultiplyAdd(b3, c1, a31);
            }
            return new Block4x16(a00, a01, a10, a11, a20, a21, a30, a31);
        }
    }
}
