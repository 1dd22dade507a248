using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TwoTower.Kernels.Simd;

/// <summary>Evaluation and serving: exact rank counting and top-k over the whole catalogue.</summary>
public sealed unsafe partial class SimdKernels
{
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
        Transpose(candidates, candidateCount, dim, candidatesTransposed);
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

    /// <summary>
    /// Top k per query by a bounded heap over the candidates in index order (see <see cref="TopKHeap"/>).
    /// Four or more queries are scored in register blocks against the transposed candidates
    /// (the same fused multiply-add chain as <see cref="ScoreDot"/>, so the same scores): a block of
    /// 16 candidates touches the heap only where a score beats its root. One query (a request) is
    /// scored row by row, with no transposed copy of the catalogue.
    /// </summary>
    public void TopK(DeviceBuffer<float> queriesBuffer, int queryCount, DeviceBuffer<float> candidatesBuffer, int candidateCount, int dim, int k,
        DeviceBuffer<int> indicesBuffer, DeviceBuffer<float> scoresBuffer)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, candidateCount);
        if (k == 0 || queryCount == 0)
            return;
        var queries = S(queriesBuffer)[..(queryCount * dim)];
        var candidates = S(candidatesBuffer)[..(candidateCount * dim)];
        var blocked = queryCount >= RowBlock && Vector256.IsHardwareAccelerated;
        // A local copy, not a field: the serving path calls TopK from concurrent requests.
        var transposedCandidates = blocked ? new float[candidateCount * dim] : [];
        if (blocked)
            Transpose(candidates, candidateCount, dim, transposedCandidates);
        const int QueriesPerTask = 16;
        fixed (float* pq = queries, pc = candidates, pct = transposedCandidates, ps = S(scoresBuffer))
        fixed (int* pi = S(indicesBuffer))
        {
            var job = new TopKJob { Q = pq, C = pc, CT = pct, Scores = ps, Indices = pi, Candidates = candidateCount, Dim = dim, K = k, Blocked = blocked };
            var tasks = (queryCount + QueriesPerTask - 1) / QueriesPerTask;
            Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = threads },
                t => job.Run(t * QueriesPerTask, Math.Min(queryCount, (t + 1) * QueriesPerTask)));
        }
    }

    sealed class TopKJob
    {
        public float* Q, C, CT, Scores;
        public int* Indices;
        public int Candidates, Dim, K;
        public bool Blocked;

        Span<float> HeapScores(int i) => new(Scores + (long)i * K, K);
        Span<int> HeapIndices(int i) => new(Indices + (long)i * K, K);

        /// <summary>Offers candidate j to query i's heap, which holds min(j, K) entries (candidates come in index order).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Offer(int i, int j, float score)
        {
            if (float.IsNaN(score))
                score = float.NegativeInfinity;
            if (j < K)
                TopKHeap.Push(HeapScores(i), HeapIndices(i), j, score, j);
            // An equal score never beats the root: it has the higher index.
            else if (score > Scores[(long)i * K])
                TopKHeap.ReplaceRoot(HeapScores(i), HeapIndices(i), K, score, j);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var i = start;
            if (Blocked)
            {
                var block = stackalloc float[16];
                for (; i + RowBlock <= end; i += RowBlock)
                {
                    var j = 0;
                    for (; j + 16 <= Candidates; j += 16)
                    {
                        var a = Block4x16.Dot(Q + (long)i * Dim, Dim, CT, Candidates, j);
                        OfferBlock(i, j, a.R00, a.R01, block);
                        OfferBlock(i + 1, j, a.R10, a.R11, block);
                        OfferBlock(i + 2, j, a.R20, a.R21, block);
                        OfferBlock(i + 3, j, a.R30, a.R31, block);
                    }
                    for (var r = i; r < i + RowBlock; r++)
                        OfferRows(r, j);
                }
            }
            for (; i < end; i++)
                OfferRows(i, 0);
            for (i = start; i < end; i++)
                TopKHeap.SortBestFirst(HeapScores(i), HeapIndices(i), K);
        }

        /// <summary>Candidates j..j+16 of query i, scored in a register block: only those above the heap's root are offered once it is full.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void OfferBlock(int i, int j, Vector256<float> low, Vector256<float> high, float* block)
        {
            var above = 0xFFFFu;
            if (j >= K)
            {
                var root = Vector256.Create(Scores[(long)i * K]);
                above = Vector256.GreaterThan(low, root).ExtractMostSignificantBits() | (Vector256.GreaterThan(high, root).ExtractMostSignificantBits() << 8);
                if (above == 0)
                    return;
            }
            low.Store(block);
            high.Store(block + 8);
            for (; above != 0; above &= above - 1)
            {
                var b = BitOperations.TrailingZeroCount(above);
                Offer(i, j + b, block[b]);
            }
        }

        /// <summary>Candidates from index `from` on for query i, scored row by row.</summary>
        void OfferRows(int i, int from)
        {
            var q = new ReadOnlySpan<float>(Q + (long)i * Dim, Dim);
            for (var j = from; j < Candidates; j++)
                Offer(i, j, ScoreDot(q, new ReadOnlySpan<float>(C + (long)j * Dim, Dim)));
        }
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
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + RowBlock <= end; i += RowBlock)
                {
                    var q0 = Q + (long)i * Dim;
                    var t0 = Vector256.Create(Thresholds[i]);
                    var t1 = Vector256.Create(Thresholds[i + 1]);
                    var t2 = Vector256.Create(Thresholds[i + 2]);
                    var t3 = Vector256.Create(Thresholds[i + 3]);
                    int n0 = 0, n1 = 0, n2 = 0, n3 = 0;
                    var j = 0;
                    for (; j + 16 <= n; j += 16)
                    {
                        var a = Block4x16.Dot(q0, Dim, CT, n, j);
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
