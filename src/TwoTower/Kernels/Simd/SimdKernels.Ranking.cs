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
