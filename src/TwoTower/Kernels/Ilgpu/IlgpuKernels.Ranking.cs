using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace TwoTower.Kernels.Ilgpu;

/// <summary>Evaluation and serving as kernels: exact rank counting and top-k, one thread per query.</summary>
public sealed partial class IlgpuKernels
{
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int> CountLauncher => Load(ref field, CountKernel);

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
            CountLauncher(queryCount, V(queries), V(candidates), V(positives), V(counts), candidateCount, dim);
    }

    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int> TopKLauncher => Load(ref field, TopKKernel);

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
            TopKLauncher(queryCount, V(queries), V(candidates), V(indices), V(scores), candidateCount, dim, k);
    }
}
