namespace TwoTower.Kernels;

public static class HostTopK
{
    /// <summary>
    /// <see cref="IKernels.TopK"/> on host arrays: uploads the queries and candidates, returns each
    /// query's k rows and scores (indices[i·k + r], best first). The one way the pipeline and the
    /// serving code ask a backend for an exact top k.
    /// </summary>
    public static (int[] Indices, float[] Scores) TopK(this IKernels kernels, float[] queries, int queryCount, float[] candidates,
        int candidateCount, int dim, int k)
    {
        var (indices, scores) = (new int[queryCount * k], new float[queryCount * k]);
        if (queryCount == 0 || k == 0)
            return (indices, scores);
        using var q = kernels.Upload(queries);
        using var c = kernels.Upload(candidates);
        using var top = kernels.Upload(indices);
        using var best = kernels.Upload(scores);
        kernels.TopK(q, queryCount, c, candidateCount, dim, k, top, best);
        kernels.CopyToHost(top, indices);
        kernels.CopyToHost(best, scores);
        return (indices, scores);
    }
}
