using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels;

/// <summary>
/// The CPU backend: managed SIMD (Vector256, FMA where the JIT finds it), blocked for registers,
/// parallel over a fixed number of row chunks so that the same thread count gives the same sums
/// in the same order (bit-identical results). The float64 references these are tested against
/// live in tests/TwoTower.Tests/Reference.cs.
/// </summary>
public sealed unsafe class SimdKernels(int threads) : IKernels
{
    public string Name => $"cpu-simd ({threads} threads)";

    public void Dispose() { }

    // Scratch reused across calls: training allocates nothing per step.
    float[] transposed = [];
    float[] logitRows = [];
    float[] dcPartials = [];

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

    // ---- batch assembly ----

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

    // ---- layers ----

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

    public void EmbeddingGather(DeviceBuffer<float> tableBuffer, int dim, DeviceBuffer<int> columnBuffer, DeviceBuffer<int> rowsBuffer, int count,
        DeviceBuffer<float> xBuffer, int xStride, int offset)
    {
        var table = S(tableBuffer);
        var column = S(columnBuffer);
        var rows = S(rowsBuffer);
        var x = S(xBuffer);
        for (var r = 0; r < count; r++)
            table.Slice(column[rows[r]] * dim, dim).CopyTo(x.Slice(r * xStride + offset, dim));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EmbeddingRowGradients(DeviceBuffer<float> dxBuffer, int dxStride, int offset, int dim, RowGroups groups, DeviceBuffer<float> gradBuffer)
    {
        var dx = S(dxBuffer);
        var grad = S(gradBuffer);
        var rows = S(groups.Rows);
        var starts = S(groups.Starts);
        var positions = S(groups.Positions);
        if (dim == 16 && Vector256.IsHardwareAccelerated)
        {
            // The row's sum in two registers: the same fused multiply-adds (1·dx + sum) in the same order as Axpy below.
            var one = Vector256<float>.One;
            fixed (float* pdx = dx, pgrad = grad)
            {
                for (var u = 0; u < rows.Length; u++)
                {
                    var (s0, s1) = (Vector256<float>.Zero, Vector256<float>.Zero);
                    for (var p = starts[u]; p < starts[u + 1]; p++)
                    {
                        var from = pdx + (long)positions[p] * dxStride + offset;
                        s0 = Vector256.FusedMultiplyAdd(one, Vector256.Load(from), s0);
                        s1 = Vector256.FusedMultiplyAdd(one, Vector256.Load(from + 8), s1);
                    }
                    var target = pgrad + (long)rows[u] * 16;
                    s0.Store(target);
                    s1.Store(target + 8);
                }
            }
            return;
        }
        for (var u = 0; u < rows.Length; u++)
        {
            var target = grad.Slice(rows[u] * dim, dim);
            target.Clear();
            for (var p = starts[u]; p < starts[u + 1]; p++)
                Axpy(1, dx.Slice(positions[p] * dxStride + offset, dim), target);
        }
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

    const int RowBlock = 4;

    /// <summary>
    /// The register block shared by the logits and the rank counting: dot products of 4
    /// consecutive 16-wide rows q0[0..4) with 16 consecutive columns j..j+16 of a transposed
    /// 16×n matrix, accumulated d = 0..15 by fused multiply-adds from 0 (8 accumulators).
    /// </summary>
    readonly struct Block4x16
    {
        public readonly Vector256<float> R00, R01, R10, R11, R20, R21, R30, R31;

        Block4x16(Vector256<float> r00, Vector256<float> r01, Vector256<float> r10, Vector256<float> r11,
            Vector256<float> r20, Vector256<float> r21, Vector256<float> r30, Vector256<float> r31) =>
            (R00, R01, R10, R11, R20, R21, R30, R31) = (r00, r01, r10, r11, r20, r21, r30, r31);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Block4x16 Dot(float* q0, float* transposed, int n, int j)
        {
            Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
            for (var d = 0; d < 16; d++)
            {
                var c0 = Vector256.Load(transposed + (long)d * n + j);
                var c1 = Vector256.Load(transposed + (long)d * n + j + 8);
                var b0 = Vector256.Create(q0[d]);
                var b1 = Vector256.Create(q0[16 + d]);
                var b2 = Vector256.Create(q0[32 + d]);
                var b3 = Vector256.Create(q0[48 + d]);
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

    /// <summary>
    /// e^x for x ≤ 0 (softmax after subtracting the row max), Cephes expf: x = n·ln2 + r with
    /// |r| ≤ ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent bits. Relative error
    /// about 2e-7 (tested against Math.Exp); 4× faster here than Vector256.Exp, which works in float64.
    /// Inputs below −87 (including −∞ from masked logits) give 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FastExp(Vector256<float> x)
    {
        var underflow = Vector256.LessThan(x, Vector256.Create(-87f));
        x = Vector256.Max(x, Vector256.Create(-87f));
        var n = Vector256.Floor(Vector256.FusedMultiplyAdd(x, Vector256.Create(1.44269504088896341f), Vector256.Create(0.5f)));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693359375f), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(2.12194440e-4f), r);
        var p = Vector256.Create(1.9875691500E-4f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.3981999507E-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(8.3334519073E-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(4.1665795894E-2f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.6666665459E-1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(5.0000001201E-1f));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        var scale = ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
        return Vector256.AndNot(p * scale, underflow.AsSingle());
    }

    public void InBatchSoftmax(DeviceBuffer<float> qBuffer, DeviceBuffer<float> cBuffer, int rows, int dim, DeviceBuffer<float>? columnOffsetBuffer,
        float temperature, DeviceBuffer<int>? itemIdsBuffer, DeviceBuffer<float> lossBuffer, DeviceBuffer<float> dqBuffer, DeviceBuffer<float> dcBuffer)
    {
        var q = S(qBuffer);
        var c = S(cBuffer);
        var lossPerRow = S(lossBuffer);
        var dq = S(dqBuffer);
        var dc = S(dcBuffer);
        ReadOnlySpan<float> columnOffset = S(columnOffsetBuffer, rows);
        ReadOnlySpan<int> itemIds = S(itemIdsBuffer, rows);
        var chunks = Math.Max(1, Math.Min(threads, (rows + RowBlock - 1) / RowBlock));
        var rowsPerChunk = (rows + chunks - 1) / chunks;
        rowsPerChunk = (rowsPerChunk + RowBlock - 1) / RowBlock * RowBlock;
        Ensure(ref transposed, rows * dim);
        Ensure(ref logitRows, chunks * RowBlock * rows);
        Ensure(ref dcPartials, chunks * rows * dim);
        for (var j = 0; j < rows; j++)
        for (var d = 0; d < dim; d++)
            transposed[d * rows + j] = c[j * dim + d];

        fixed (float* pq = q, pc = c, pOffset = columnOffset, pLoss = lossPerRow, pdq = dq, pct = transposed, pl = logitRows, pdc = dcPartials)
        fixed (int* pIds = itemIds)
        {
            var job = new SoftmaxJob
            {
                Q = pq, C = pc, CT = pct, Offset = columnOffset.IsEmpty ? null : pOffset, Ids = itemIds.IsEmpty ? null : pIds,
                Loss = pLoss, DQ = pdq, Logits = pl, DCPartials = pdc,
                Rows = rows, Dim = dim, InvTemperature = 1f / temperature, RowsPerChunk = rowsPerChunk,
            };
            if (chunks == 1)
                job.Run(0);
            else
                Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Run);

            // Sum the per-chunk partial dc in chunk order: deterministic for a given thread count.
            var length = rows * dim;
            var dcSpan = dc[..length];
            new ReadOnlySpan<float>(pdc, length).CopyTo(dcSpan);
            for (var t = 1; t < chunks; t++)
                Axpy(1, new ReadOnlySpan<float>(pdc + (long)t * length, length), dcSpan);
        }
    }

    /// <summary>The per-chunk work of <see cref="InBatchSoftmax"/>; a class so Parallel.For can share the pointers.</summary>
    sealed class SoftmaxJob
    {
        public float* Q, C, CT, Offset, Loss, DQ, Logits, DCPartials;
        public int* Ids;
        public int Rows, Dim, RowsPerChunk;
        public float InvTemperature;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int chunk)
        {
            var start = chunk * RowsPerChunk;
            var end = Math.Min(Rows, start + RowsPerChunk);
            var logits = Logits + (long)chunk * RowBlock * Rows;
            var dcPart = DCPartials + (long)chunk * Rows * Dim;
            new Span<float>(dcPart, Rows * Dim).Clear();
            for (var i0 = start; i0 < end; i0 += RowBlock)
            {
                var block = Math.Min(RowBlock, end - i0);
                ComputeLogits(i0, block, logits);
                for (var r = 0; r < block; r++)
                    SoftmaxRow(i0 + r, logits + (long)r * Rows);
                Backward(i0, block, logits, dcPart);
            }
        }

        /// <summary>logits[r, j] = (q_{i0+r} · c_j) / τ − offset_j for the rows of the block.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void ComputeLogits(int i0, int block, float* logits)
        {
            var n = Rows;
            var j = 0;
            if (Dim == 16 && block == RowBlock && Vector256.IsHardwareAccelerated)
            {
                var q0 = Q + (long)i0 * 16;
                for (; j + 16 <= n; j += 16)
                {
                    var a = Block4x16.Dot(q0, CT, n, j);
                    a.R00.Store(logits + j);
                    a.R01.Store(logits + j + 8);
                    a.R10.Store(logits + n + j);
                    a.R11.Store(logits + n + j + 8);
                    a.R20.Store(logits + 2 * n + j);
                    a.R21.Store(logits + 2 * n + j + 8);
                    a.R30.Store(logits + 3 * n + j);
                    a.R31.Store(logits + 3 * n + j + 8);
                }
            }
            for (var r = 0; r < block; r++)
            {
                var qr = Q + (long)(i0 + r) * Dim;
                var lr = logits + (long)r * n;
                for (var jj = j; jj < n; jj++)
                {
                    var s = 0f;
                    for (var d = 0; d < Dim; d++)
                        s += qr[d] * CT[(long)d * n + jj];
                    lr[jj] = s;
                }
                var scale = Vector256.Create(InvTemperature);
                var k = 0;
                if (Offset != null)
                {
                    for (; k + 8 <= n; k += 8)
                        (Vector256.Load(lr + k) * scale - Vector256.Load(Offset + k)).Store(lr + k);
                    for (; k < n; k++)
                        lr[k] = lr[k] * InvTemperature - Offset[k];
                }
                else
                {
                    for (; k + 8 <= n; k += 8)
                        (Vector256.Load(lr + k) * scale).Store(lr + k);
                    for (; k < n; k++)
                        lr[k] *= InvTemperature;
                }
            }
        }

        /// <summary>Turns row i's logits into g = (softmax − onehot(i)) / τ in place and writes its loss.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void SoftmaxRow(int i, float* row)
        {
            var n = Rows;
            if (Ids != null)
            {
                var item = Ids[i];
                for (var j = 0; j < n; j++)
                {
                    if (Ids[j] == item && j != i)
                        row[j] = float.NegativeInfinity;
                }
            }
            var positive = row[i];
            var vmax = Vector256.Create(float.NegativeInfinity);
            var k = 0;
            for (; k + 8 <= n; k += 8)
                vmax = Vector256.Max(vmax, Vector256.Load(row + k));
            var max = float.NegativeInfinity;
            for (var l = 0; l < 8; l++)
                max = MathF.Max(max, vmax[l]);
            for (; k < n; k++)
                max = MathF.Max(max, row[k]);

            var vm = Vector256.Create(max);
            var vsum = Vector256<float>.Zero;
            k = 0;
            for (; k + 8 <= n; k += 8)
            {
                var e = FastExp(Vector256.Load(row + k) - vm);
                e.Store(row + k);
                vsum += e;
            }
            var sum = Vector256.Sum(vsum);
            for (; k < n; k++)
            {
                var e = MathF.Exp(row[k] - max);
                row[k] = e;
                sum += e;
            }
            Loss[i] = max + MathF.Log(sum) - positive;

            var scale = Vector256.Create(InvTemperature / sum);
            k = 0;
            for (; k + 8 <= n; k += 8)
                FlushSubnormal(Vector256.Load(row + k) * scale).Store(row + k);
            for (; k < n; k++)
                row[k] = FlushSubnormal(row[k] * (InvTemperature / sum));
            row[i] -= InvTemperature;
        }

        /// <summary>dq_r = Σ_j g[r,j] c_j; dcPart_j += Σ_r g[r,j] q_r.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Backward(int i0, int block, float* g, float* dcPart)
        {
            var n = Rows;
            if (Dim == 16 && block == RowBlock && Vector256.IsHardwareAccelerated)
            {
                Vector256<float> d00 = default, d01 = default, d10 = default, d11 = default;
                Vector256<float> d20 = default, d21 = default, d30 = default, d31 = default;
                for (var j = 0; j < n; j++)
                {
                    var c0 = Vector256.Load(C + (long)j * 16);
                    var c1 = Vector256.Load(C + (long)j * 16 + 8);
                    var g0 = Vector256.Create(g[j]);
                    var g1 = Vector256.Create(g[n + j]);
                    var g2 = Vector256.Create(g[2 * n + j]);
                    var g3 = Vector256.Create(g[3 * n + j]);
                    d00 = Vector256.FusedMultiplyAdd(g0, c0, d00);
                    d01 = Vector256.FusedMultiplyAdd(g0, c1, d01);
                    d10 = Vector256.FusedMultiplyAdd(g1, c0, d10);
                    d11 = Vector256.FusedMultiplyAdd(g1, c1, d11);
                    d20 = Vector256.FusedMultiplyAdd(g2, c0, d20);
                    d21 = Vector256.FusedMultiplyAdd(g2, c1, d21);
                    d30 = Vector256.FusedMultiplyAdd(g3, c0, d30);
                    d31 = Vector256.FusedMultiplyAdd(g3, c1, d31);
                }
                var dq0 = DQ + (long)i0 * 16;
                d00.Store(dq0);
                d01.Store(dq0 + 8);
                d10.Store(dq0 + 16);
                d11.Store(dq0 + 24);
                d20.Store(dq0 + 32);
                d21.Store(dq0 + 40);
                d30.Store(dq0 + 48);
                d31.Store(dq0 + 56);

                var q0 = Q + (long)i0 * 16;
                var q00 = Vector256.Load(q0);
                var q01 = Vector256.Load(q0 + 8);
                var q10 = Vector256.Load(q0 + 16);
                var q11 = Vector256.Load(q0 + 24);
                var q20 = Vector256.Load(q0 + 32);
                var q21 = Vector256.Load(q0 + 40);
                var q30 = Vector256.Load(q0 + 48);
                var q31 = Vector256.Load(q0 + 56);
                for (var j = 0; j < n; j++)
                {
                    var p = dcPart + (long)j * 16;
                    var g0 = Vector256.Create(g[j]);
                    var g1 = Vector256.Create(g[n + j]);
                    var g2 = Vector256.Create(g[2 * n + j]);
                    var g3 = Vector256.Create(g[3 * n + j]);
                    var s0 = Vector256.FusedMultiplyAdd(g0, q00, Vector256.Load(p));
                    var s1 = Vector256.FusedMultiplyAdd(g0, q01, Vector256.Load(p + 8));
                    s0 = Vector256.FusedMultiplyAdd(g1, q10, s0);
                    s1 = Vector256.FusedMultiplyAdd(g1, q11, s1);
                    s0 = Vector256.FusedMultiplyAdd(g2, q20, s0);
                    s1 = Vector256.FusedMultiplyAdd(g2, q21, s1);
                    s0 = Vector256.FusedMultiplyAdd(g3, q30, s0);
                    s1 = Vector256.FusedMultiplyAdd(g3, q31, s1);
                    s0.Store(p);
                    s1.Store(p + 8);
                }
                return;
            }
            for (var r = 0; r < block; r++)
            {
                var gr = g + (long)r * n;
                var dqr = DQ + (long)(i0 + r) * Dim;
                var qr = Q + (long)(i0 + r) * Dim;
                for (var d = 0; d < Dim; d++)
                    dqr[d] = 0;
                for (var j = 0; j < n; j++)
                {
                    var gj = gr[j];
                    var cj = C + (long)j * Dim;
                    var pj = dcPart + (long)j * Dim;
                    for (var d = 0; d < Dim; d++)
                    {
                        dqr[d] += gj * cj[d];
                        pj[d] += gj * qr[d];
                    }
                }
            }
        }
    }

    public void AdamW(DeviceBuffer<float> wBuffer, DeviceBuffer<float> gBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer,
        int count, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        var w = S(wBuffer)[..count];
        var g = S(gBuffer)[..count];
        var m = S(mBuffer)[..count];
        var v = S(vBuffer)[..count];
        var length = count;
        fixed (float* pw = w, pg = g, pm = m, pv = v)
        {
            var (wp, gp, mp, vp) = ((nint)pw, (nint)pg, (nint)pm, (nint)pv);
            const int Block = 1 << 14;
            if (length < 4 * Block || threads == 1)
                AdamStep((float*)wp, (float*)gp, (float*)mp, (float*)vp, length, lrT, beta1, beta2, epsilon, decay);
            else
                Parallel.For(0, (length + Block - 1) / Block, new ParallelOptions { MaxDegreeOfParallelism = threads }, b =>
                {
                    var start = b * Block;
                    AdamStep((float*)wp + start, (float*)gp + start, (float*)mp + start, (float*)vp + start,
                        Math.Min(Block, length - start), lrT, beta1, beta2, epsilon, decay);
                });
        }
    }

    public void AdamWRows(DeviceBuffer<float> wBuffer, DeviceBuffer<float> gBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer,
        int rowWidth, DeviceBuffer<int> rowsBuffer, DeviceBuffer<int> rowStepBuffer, int step, DeviceBuffer<float> lrTByStepBuffer,
        float beta1, float beta2, float epsilon, float decayTouched, float decayUntouched)
    {
        var w = S(wBuffer);
        var g = S(gBuffer);
        var m = S(mBuffer);
        var v = S(vBuffer);
        var lrTByStep = S(lrTByStepBuffer);
        var rows = S(rowsBuffer);
        var rowStep = S(rowStepBuffer);
        fixed (float* pw = w, pg = g, pm = m, pv = v, plr = lrTByStep)
        fixed (int* pRows = rows, pStep = rowStep)
        {
            var (wp, gp, mp, vp, lrp, rp, sp) = ((nint)pw, (nint)pg, (nint)pm, (nint)pv, (nint)plr, (nint)pRows, (nint)pStep);
            var count = rows.Length;
            ForChunks(count, (first, end) =>
            {
                for (var i = first; i < end; i++)
                {
                    var row = ((int*)rp)[i];
                    var offset = (long)row * rowWidth;
                    var rw = (float*)wp + offset;
                    var rm = (float*)mp + offset;
                    var rv = (float*)vp + offset;
                    ref var last = ref ((int*)sp)[row];
                    Replay(rw, rm, rv, rowWidth, last + 1, step - 1, (float*)lrp, beta1, beta2, epsilon, decayUntouched);
                    AdamStep(rw, (float*)gp + offset, rm, rv, rowWidth, ((float*)lrp)[step], beta1, beta2, epsilon, decayTouched);
                    last = step;
                }
            });
        }
    }

    public void AdamWCatchUp(DeviceBuffer<float> wBuffer, DeviceBuffer<float> mBuffer, DeviceBuffer<float> vBuffer, int rowWidth,
        DeviceBuffer<int> rowsBuffer, DeviceBuffer<int> rowStepBuffer, int step, DeviceBuffer<float> lrTByStepBuffer,
        float beta1, float beta2, float epsilon, float decayUntouched)
    {
        var w = S(wBuffer);
        var m = S(mBuffer);
        var v = S(vBuffer);
        var lrTByStep = S(lrTByStepBuffer);
        var rows = S(rowsBuffer);
        var rowStep = S(rowStepBuffer);
        fixed (float* pw = w, pm = m, pv = v, plr = lrTByStep)
        fixed (int* pRows = rows, pStep = rowStep)
        {
            var (wp, mp, vp, lrp, rp, sp) = ((nint)pw, (nint)pm, (nint)pv, (nint)plr, (nint)pRows, (nint)pStep);
            ForChunks(rows.Length, (first, end) =>
            {
                for (var i = first; i < end; i++)
                {
                    var row = ((int*)rp)[i];
                    var offset = (long)row * rowWidth;
                    ref var last = ref ((int*)sp)[row];
                    Replay((float*)wp + offset, (float*)mp + offset, (float*)vp + offset, rowWidth, last + 1, step, (float*)lrp,
                        beta1, beta2, epsilon, decayUntouched);
                    last = step;
                }
            });
        }
    }

    /// <summary>
    /// Subnormal floats flushed to zero, as TensorFlow's CPU kernels run (flush-to-zero mode). An
    /// untouched embedding row's momentum decays as 0.9^t and turns subnormal after ~850 steps;
    /// x86 arithmetic on subnormals is ~100× slower, which made full-scale epochs crawl.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FlushSubnormal(Vector256<float> x) =>
        Vector256.ConditionalSelect(Vector256.LessThan(Vector256.Abs(x), Vector256.Create(SmallestNormal)), Vector256<float>.Zero, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float FlushSubnormal(float x) => MathF.Abs(x) < SmallestNormal ? 0f : x;

    const float SmallestNormal = 1.17549435E-38f;

    /// <summary>
    /// Zero-gradient steps first..last (inclusive) on one row. For 16-wide rows the row stays in
    /// registers across steps; the operations per element are exactly <see cref="AdamStep"/>'s with
    /// g = 0 (including the + c·0 terms), so the result is bit-identical. A row untouched for more
    /// than ~800 steps has its momentum flushed to zero; from then on (without decay) only v changes,
    /// which the second loop does at a tenth of the cost (rarely seen customers spend most steps there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Replay(float* w, float* m, float* v, int width, int first, int last, float* lrT, float beta1, float beta2,
        float epsilon, float decay)
    {
        if (first > last)
            return;
        if (width != 16)
        {
            for (var s = first; s <= last; s++)
                AdamStep(w, null, m, v, width, lrT[s], beta1, beta2, epsilon, decay);
            return;
        }
        var (b1, b2) = (Vector256.Create(beta1), Vector256.Create(beta2));
        var gm = Vector256.Create(1 - beta1) * Vector256<float>.Zero;
        var gv = Vector256.Create(1 - beta2) * (Vector256<float>.Zero * Vector256<float>.Zero);
        var (eps, d) = (Vector256.Create(epsilon), Vector256.Create(decay));
        var (w0, w1, m0, m1, v0, v1) = (Vector256.Load(w), Vector256.Load(w + 8), Vector256.Load(m), Vector256.Load(m + 8), Vector256.Load(v), Vector256.Load(v + 8));
        var magnitude = Vector256.Create(0x7FFFFFFFu);
        var step = first;
        for (; step <= last; step++)
        {
            // Once the momentum has decayed to ±0 (flushed) and nothing decays w, a step leaves w and m
            // as they are (w − lr·0/(√v+ε) = w): only v moves, in the cheap loop below.
            if (decay == 0 && ((m0.AsUInt32() | m1.AsUInt32()) & magnitude) == Vector256<uint>.Zero)
                break;
            if (decay != 0)
            {
                w0 -= d * w0;
                w1 -= d * w1;
            }
            m0 = FlushSubnormal(b1 * m0 + gm);
            m1 = FlushSubnormal(b1 * m1 + gm);
            v0 = FlushSubnormal(b2 * v0 + gv);
            v1 = FlushSubnormal(b2 * v1 + gv);
            var lr = Vector256.Create(lrT[step]);
            w0 -= lr * m0 / (Vector256.Sqrt(v0) + eps);
            w1 -= lr * m1 / (Vector256.Sqrt(v1) + eps);
        }
        if (step <= last)
            (m0, m1) = (Vector256<float>.Zero, Vector256<float>.Zero);
        for (; step <= last && (v0.AsUInt32() | v1.AsUInt32()) != Vector256<uint>.Zero; step++)
        {
            v0 = FlushSubnormal(b2 * v0 + gv);
            v1 = FlushSubnormal(b2 * v1 + gv);
        }
        w0.Store(w);
        w1.Store(w + 8);
        m0.Store(m);
        m1.Store(m + 8);
        v0.Store(v);
        v1.Store(v + 8);
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

    /// <summary>
    /// One Adam step on `count` consecutive elements (g null: a zero gradient), after w −= decay·w
    /// when decay is not 0. The vector and scalar paths do the same float operations in the same
    /// order, so where an element falls does not change its result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AdamStep(float* w, float* g, float* m, float* v, int count, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        if (decay != 0)
        {
            for (var i = 0; i < count; i++)
                w[i] -= decay * w[i];
        }
        var b1 = Vector256.Create(beta1);
        var b2 = Vector256.Create(beta2);
        var c1 = Vector256.Create(1 - beta1);
        var c2 = Vector256.Create(1 - beta2);
        var lr = Vector256.Create(lrT);
        var eps = Vector256.Create(epsilon);
        var k = 0;
        for (; k + 8 <= count; k += 8)
        {
            var gv = g == null ? Vector256<float>.Zero : Vector256.Load(g + k);
            var mv = FlushSubnormal(b1 * Vector256.Load(m + k) + c1 * gv);
            var vv = FlushSubnormal(b2 * Vector256.Load(v + k) + c2 * (gv * gv));
            mv.Store(m + k);
            vv.Store(v + k);
            (Vector256.Load(w + k) - lr * mv / (Vector256.Sqrt(vv) + eps)).Store(w + k);
        }
        for (; k < count; k++)
        {
            var gk = g == null ? 0f : g[k];
            var mk = FlushSubnormal(beta1 * m[k] + (1 - beta1) * gk);
            var vk = FlushSubnormal(beta2 * v[k] + (1 - beta2) * (gk * gk));
            m[k] = mk;
            v[k] = vk;
            w[k] -= lrT * mk / (MathF.Sqrt(vk) + epsilon);
        }
    }

    /// <summary>Σ_d a[d]·b[d] as a chain of fused multiply-adds from 0 in order d = 0..n−1 (the scoring order).</summary>
    public static float ScoreDot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var s = 0f;
        for (var d = 0; d < a.Length; d++)
            s = MathF.FusedMultiplyAdd(a[d], b[d], s);
        return s;
    }

    float[] candidatesTransposed = [];

    public void CountScoresAbove(DeviceBuffer<float> queriesBuffer, int queryCount, DeviceBuffer<float> candidatesBuffer, int candidateCount,
        int dim, DeviceBuffer<float> positivesBuffer, DeviceBuffer<int> countsBuffer)
    {
        var queries = S(queriesBuffer);
        var candidates = S(candidatesBuffer);
        var positives = S(positivesBuffer);
        var counts = S(countsBuffer);
        var thresholds = new float[queryCount];
        for (var i = 0; i < queryCount; i++)
            thresholds[i] = ScoreDot(queries.Slice(i * dim, dim), positives.Slice(i * dim, dim));
        Ensure(ref candidatesTransposed, candidateCount * dim);
        for (var j = 0; j < candidateCount; j++)
        for (var d = 0; d < dim; d++)
            candidatesTransposed[d * candidateCount + j] = candidates[j * dim + d];
        const int QueriesPerTask = 64;
        fixed (float* pq = queries, pc = candidates, pct = candidatesTransposed, pt = thresholds)
        fixed (int* pCounts = counts)
        {
            var job = new CountJob { Q = pq, C = pc, CT = pct, Thresholds = pt, Counts = pCounts, Candidates = candidateCount, Dim = dim };
            var tasks = (queryCount + QueriesPerTask - 1) / QueriesPerTask;
            Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = threads },
                t => job.Run(t * QueriesPerTask, Math.Min(queryCount, (t + 1) * QueriesPerTask)));
        }
    }

    public void TopK(DeviceBuffer<float> queriesBuffer, int queryCount, DeviceBuffer<float> candidatesBuffer, int candidateCount, int dim, int k,
        DeviceBuffer<int> indicesBuffer, DeviceBuffer<float> scoresBuffer)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, candidateCount);
        if (k == 0)
            return;
        var (queries, candidates) = (((HostBuffer<float>)queriesBuffer).Array, ((HostBuffer<float>)candidatesBuffer).Array);
        var (q0, c0) = (((HostBuffer<float>)queriesBuffer).Start, ((HostBuffer<float>)candidatesBuffer).Start);
        var (indices, scores) = ((HostBuffer<int>)indicesBuffer, (HostBuffer<float>)scoresBuffer);
        Parallel.For(0, queryCount, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            var query = queries.AsSpan(q0 + i * dim, dim);
            var candidateSpan = candidates.AsSpan(c0, candidateCount * dim);
            var heapScores = scores.Span.Slice(i * k, k);
            var heapIndices = indices.Span.Slice(i * k, k);
            for (var j = 0; j < candidateCount; j++)
            {
                var score = ScoreDot(query, candidateSpan.Slice(j * dim, dim));
                if (float.IsNaN(score))
                    score = float.NegativeInfinity;
                if (j < k)
                    TopKHeap.Push(heapScores, heapIndices, j, score, j);
                // Candidates come in index order, so an equal score never beats the root (it has the higher index).
                else if (score > heapScores[0])
                    TopKHeap.ReplaceRoot(heapScores, heapIndices, k, score, j);
            }
            TopKHeap.SortBestFirst(heapScores, heapIndices, k);
        });
    }

    sealed class CountJob
    {
        public float* Q, C, CT, Thresholds;
        public int* Counts;
        public int Candidates, Dim;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var n = Candidates;
            var i = start;
            if (Dim == 16 && Vector256.IsHardwareAccelerated)
            {
                for (; i + RowBlock <= end; i += RowBlock)
                {
                    var q0 = Q + (long)i * 16;
                    var t0 = Vector256.Create(Thresholds[i]);
                    var t1 = Vector256.Create(Thresholds[i + 1]);
                    var t2 = Vector256.Create(Thresholds[i + 2]);
                    var t3 = Vector256.Create(Thresholds[i + 3]);
                    int n0 = 0, n1 = 0, n2 = 0, n3 = 0;
                    var j = 0;
                    for (; j + 16 <= n; j += 16)
                    {
                        var a = Block4x16.Dot(q0, CT, n, j);
                        n0 += CountAbove(a.R00, a.R01, t0);
                        n1 += CountAbove(a.R10, a.R11, t1);
                        n2 += CountAbove(a.R20, a.R21, t2);
                        n3 += CountAbove(a.R30, a.R31, t3);
                    }
                    Counts[i] = n0 + TailCount(i, j);
                    Counts[i + 1] = n1 + TailCount(i + 1, j);
                    Counts[i + 2] = n2 + TailCount(i + 2, j);
                    Counts[i + 3] = n3 + TailCount(i + 3, j);
                }
            }
            for (; i < end; i++)
                Counts[i] = TailCount(i, 0);
            for (i = start; i < end; i++)
            {
                if (!float.IsFinite(Thresholds[i]))
                    Counts[i] = -1;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static int CountAbove(Vector256<float> low, Vector256<float> high, Vector256<float> threshold) =>
            BitOperations.PopCount(Vector256.GreaterThan(low, threshold).ExtractMostSignificantBits()
                                   | (Vector256.GreaterThan(high, threshold).ExtractMostSignificantBits() << 8));

        /// <summary>Count of candidates from index `from` on scoring above query i's threshold, scalar.</summary>
        int TailCount(int i, int from)
        {
            var q = new ReadOnlySpan<float>(Q + (long)i * Dim, Dim);
            var count = 0;
            for (var j = from; j < Candidates; j++)
            {
                if (ScoreDot(q, new ReadOnlySpan<float>(C + (long)j * Dim, Dim)) > Thresholds[i])
                    count++;
            }
            return count;
        }
    }
}
