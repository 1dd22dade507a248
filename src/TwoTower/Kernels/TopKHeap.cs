using System.Numerics;

namespace TwoTower.Kernels;

/// <summary>
/// The bounded heap behind every host top-k (the SIMD backend's over float scores, the candidate
/// sources' over double sums): a min-heap of (score, index) whose root is the worst kept candidate,
/// "worse" = lower score, or the same score and a higher index (a total order, so the selection is
/// deterministic). IlgpuKernels.TopKKernel does the same on device views.
/// </summary>
static class TopKHeap
{
    static bool Worse<T>(T scoreA, int indexA, T scoreB, int indexB) where T : IComparisonOperators<T, T, bool> =>
        scoreA < scoreB || (scoreA == scoreB && indexA > indexB);

    /// <summary>Whether (score, index) beats the heap's root, the worst entry kept.</summary>
    public static bool BeatsRoot<T>(ReadOnlySpan<T> scores, ReadOnlySpan<int> indices, T score, int index) where T : IComparisonOperators<T, T, bool> =>
        Worse(scores[0], indices[0], score, index);

    /// <summary>Adds entry `count` (the heap holds count entries before).</summary>
    public static void Push<T>(Span<T> scores, Span<int> indices, int count, T score, int index) where T : IComparisonOperators<T, T, bool>
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

    /// <summary>Replaces the root (the worst entry) and restores the heap over `count` entries.</summary>
    public static void ReplaceRoot<T>(Span<T> scores, Span<int> indices, int count, T score, int index) where T : IComparisonOperators<T, T, bool>
    {
        var at = 0;
        while (true)
        {
            var child = 2 * at + 1;
            if (child >= count)
                break;
            if (child + 1 < count && Worse(scores[child + 1], indices[child + 1], scores[child], indices[child]))
                child++;
            if (!Worse(scores[child], indices[child], score, index))
                break;
            scores[at] = scores[child];
            indices[at] = indices[child];
            at = child;
        }
        scores[at] = score;
        indices[at] = index;
    }

    /// <summary>Heap sort in place: the worst entry goes last each time, leaving the best first.</summary>
    public static void SortBestFirst<T>(Span<T> scores, Span<int> indices, int count) where T : IComparisonOperators<T, T, bool>
    {
        for (var end = count - 1; end > 0; end--)
        {
            var (rootScore, rootIndex) = (scores[0], indices[0]);
            ReplaceRoot(scores, indices, end, scores[end], indices[end]);
            scores[end] = rootScore;
            indices[end] = rootIndex;
        }
    }
}
