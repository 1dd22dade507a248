using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>The SIMD backend's rank counting and top-k over the whole catalogue. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdRankingTests
{
    /// <summary>
    /// Inputs on a coarse grid (multiples of 1/2 and 1/4, small sums): every dot product is exact in
    /// float32 however it is rounded, so exact ties are frequent and the expected order is certain.
    /// </summary>
    internal static (float[] Q, float[] C) GridInputs(int queries, int candidates, int dim)
    {
        var q = Reference.Random(queries * dim, 41).Select(v => MathF.Round(v * 4) / 4).ToArray();
        var c = Reference.Random(candidates * dim, 42).Select(v => MathF.Round(v * 2) / 2).ToArray();
        return (q, c);
    }

    /// <summary>Brute force: every candidate's float64 score, sorted best first, ties to the lower index; NaN as −∞.</summary>
    internal static int[] BruteForceTopK(float[] q, int i, float[] c, int candidates, int dim, int k) =>
        Enumerable.Range(0, candidates)
            .Select(j => (Score: Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]), Index: j))
            .Select(x => double.IsNaN(x.Score) ? (double.NegativeInfinity, x.Index) : x)
            .OrderByDescending(x => x.Item1).ThenBy(x => x.Item2).Take(k).Select(x => x.Item2).ToArray();

    [Theory]
    [InlineData(1, 1, 30, 30)]
    [InlineData(2, 7, 500, 100)]
    [InlineData(2, 3, 64, 1)]
    [InlineData(2, 37, 1001, 12)]   // register blocks of 4 queries × 16 candidates, with a query tail and a candidate tail
    [InlineData(1, 8, 200, 40)]     // the heap fills inside a block
    [InlineData(2, 9, 300, 20, 40)] // register blocks over a width other than 16
    [InlineData(1, 5, 100, 10, 7)]
    public void TopKEqualsBruteForceSortWithTiesToTheLowerIndex(int threads, int queries, int candidates, int k, int dim = 16)
    {
        var (q, c) = GridInputs(queries, candidates, dim);
        c.AsSpan(3 * dim, dim).CopyTo(c.AsSpan(candidates / 2 * dim, dim));   // an exact duplicate: the tie goes to index 3
        if (candidates > 40)
            c[40 * dim] = float.NaN;                                           // a NaN score ranks last
        var (indices, scores) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        new ArrayOps(new SimdKernels(threads)).TopK(q, queries, c, candidates, dim, k, indices, scores);
        for (var i = 0; i < queries; i++)
        {
            Assert.Equal(BruteForceTopK(q, i, c, candidates, dim, k), indices.AsSpan(i * k, k).ToArray());
            for (var r = 0; r < k; r++)
            {
                var expected = SimdKernels.ScoreDot(q.AsSpan(i * dim, dim), c.AsSpan(indices[i * k + r] * dim, dim));
                Assert.Equal(float.IsNaN(expected) ? float.NegativeInfinity : expected, scores[i * k + r]);
            }
        }
    }
}

/// <summary>The ILGPU kernels for rank counting and top-k over the whole catalogue, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuRankingTests(IlgpuCpu ilgpu)
{
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

    [Fact]
    public void RankCountingMatchesSimdWithExactTiesAndNaN()
    {
        const int queries = 50, candidates = 3000, dim = 16;
        var q = Reference.Random(queries * dim, 21);
        var c = Reference.Random(candidates * dim, 22).Select(v => MathF.Round(v * 2) / 2).ToArray();
        var arbitrary = Reference.Random(queries * dim, 23);
        var positives = new float[queries * dim];
        for (var i = 0; i < queries; i++)
            (i % 2 == 0 ? c.AsSpan(i * dim, dim) : arbitrary.AsSpan(i * dim, dim)).CopyTo(positives.AsSpan(i * dim, dim));
        positives[^1] = float.NaN;
        var (cg, cs) = (Enumerable.Repeat(-2, queries).ToArray(), Enumerable.Repeat(-2, queries).ToArray());
        gpu.CountScoresAbove(q, queries, c, candidates, dim, positives, cg);
        simd.CountScoresAbove(q, queries, c, candidates, dim, positives, cs);
        // The backends may round a dot product differently (fused or not), so near-ties can differ by one;
        // the positive's own copy must tie in each.
        for (var i = 0; i < queries; i++)
            Assert.InRange(cg[i], cs[i] - 1, cs[i] + 1);
        Assert.Equal(-1, cg[^1]);
        var exactCopies = Enumerable.Range(0, queries / 2).Select(k => 2 * k).Where(i => i < queries - 1);
        foreach (var i in exactCopies)
        {
            var copyScore = Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[i * dim + d]);
            var strictlyAbove = Enumerable.Range(0, candidates).Count(j => Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]) > copyScore + 1e-5);
            var tied = Enumerable.Range(0, candidates).Count(j => Math.Abs(Enumerable.Range(0, dim).Sum(d => (double)q[i * dim + d] * c[j * dim + d]) - copyScore) <= 1e-5);
            Assert.InRange(cg[i], strictlyAbove, strictlyAbove + tied - 1);
        }
    }

    [Fact]
    public void TopKEqualsSimdAndBruteForce()
    {
        const int queries = 9, candidates = 3000, dim = 16, k = 50;
        var (q, c) = SimdRankingTests.GridInputs(queries, candidates, dim);
        c.AsSpan(5 * dim, dim).CopyTo(c.AsSpan(600 * dim, dim));
        c[100 * dim] = float.NaN;
        var (ig, sg) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        var (isimd, ssimd) = (Enumerable.Repeat(-7, queries * k).ToArray(), Reference.Poisoned(queries * k));
        gpu.TopK(q, queries, c, candidates, dim, k, ig, sg);
        simd.TopK(q, queries, c, candidates, dim, k, isimd, ssimd);
        Assert.Equal(isimd, ig);
        Assert.Equal(ssimd, sg);
        for (var i = 0; i < queries; i++)
            Assert.Equal(SimdRankingTests.BruteForceTopK(q, i, c, candidates, dim, k), ig.AsSpan(i * k, k).ToArray());
    }
}
