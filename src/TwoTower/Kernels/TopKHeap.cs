namespace TwoTower.Kernels;

/// <summary>
/// The bounded heap behind the SIMD backend's top-k: a min-heap of (score, index) whose root is the
/// worst kept candidate, "worse" = lower score, or the same score and a higher index (a total
/// order, so the selection is deterministic). IlgpuKernels.TopKKernel does the same on device views.
/// </summary>
static class TopKHeap
{
    static bool Worse(float scoreA, int indexA, float scoreB, int indexB) => scoreA < scoreB || (scoreA == scoreB && indexA > indexB);

    /// <summary>Adds entry `count` (the heap holds count entries before).</summary>
    public static void Push(Span<float> scores, Span<int> indices, int count, float score, int index)
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
    public static void ReplaceRoot(Span<float> scores, Span<int> indices, int count, float score, int index)
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
    public static void SortBestFirst(Span<float> scores, Span<int> indices, int count)
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
