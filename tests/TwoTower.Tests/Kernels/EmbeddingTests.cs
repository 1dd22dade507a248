using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>
/// The pooled history bag in float64 plain loops: what <see cref="IKernels.EmbeddingBagGather"/> and
/// <see cref="IKernels.EmbeddingBagRowGradients"/> compute, for both backends' tests.
/// </summary>
public static class BagReference
{
    /// <summary>A batch of bags: ids in [0, tableRows) with empty slots (−1), some bags empty, repeats allowed.</summary>
    public static int[] Bags(int bagCount, int bagLength, int tableRows, int seed)
    {
        var rng = new Rng((ulong)seed);
        var ids = new int[bagCount * bagLength];
        for (var b = 0; b < bagCount; b++)
        {
            var filled = b % 4 == 0 ? 0 : 1 + rng.NextInt(bagLength);
            for (var j = 0; j < bagLength; j++)
                ids[b * bagLength + j] = j < filled || rng.NextInt(3) == 0 && j > filled ? rng.NextInt(tableRows) : -1;
        }
        return ids;
    }

    public static double Weight(int[] ids, float[] slotWeights, int bag, int slot)
    {
        var length = slotWeights.Length;
        if (ids[bag * length + slot] < 0)
            return 0;
        var total = Enumerable.Range(0, length).Where(j => ids[bag * length + j] >= 0).Sum(j => (double)slotWeights[j]);
        return slotWeights[slot] / total;
    }

    /// <summary>Checks x (count rows, at offset) and the weights against the float64 pooling.</summary>
    public static void CheckGather(float[] table, int dim, int[] ids, float[] slotWeights, int[] rows, float[] x, int stride, int offset, float[] weights)
    {
        var length = slotWeights.Length;
        for (var r = 0; r < rows.Length; r++)
        {
            var expected = new double[dim];
            for (var j = 0; j < length; j++)
            {
                var w = Weight(ids, slotWeights, rows[r], j);
                Assert.Equal(w, weights[r * length + j], 1e-6);
                for (var d = 0; d < dim && w > 0; d++)
                    expected[d] += w * table[ids[rows[r] * length + j] * dim + d];
            }
            Assert.True(Reference.MaxRelativeError(x.AsSpan(r * stride + offset, dim), expected, floor: 1e-3) < 1e-5, $"row {r}");
        }
    }

    /// <summary>
    /// Random bags pooled and their gradients taken by a backend (the batch is `rows` of the bags),
    /// each checked against the float64 definitions below.
    /// </summary>
    public static void GatherAndRowGradientsMatch(ArrayOps kernels, int dim, int length, int tableRows, int bags, int stride, int offset, int[] rows,
        int seed, bool accumulate)
    {
        var table = Reference.Random(tableRows * dim, seed);
        var ids = Bags(bags, length, tableRows, seed + 1);
        var slotWeights = Data.PurchaseHistory.SlotWeights(length, recency: true);
        var (x, weights) = (Reference.Poisoned(rows.Length * stride), Reference.Poisoned(rows.Length * length));
        kernels.EmbeddingBagGather(table, dim, ids, length, slotWeights, rows, x, stride, offset, weights);
        CheckGather(table, dim, ids, slotWeights, rows, x, stride, offset, weights);

        var dx = Reference.Random(rows.Length * stride, seed + 2);
        var before = accumulate ? Reference.Random(tableRows * dim, seed + 3) : Reference.Poisoned(tableRows * dim);
        var grad = before.ToArray();
        kernels.EmbeddingBagRowGradients(dx, stride, offset, dim, weights, ids, length, rows, accumulate, grad);
        CheckGradients(before, grad, dim, dx, stride, offset, weights, ids, length, rows, accumulate);
    }

    /// <summary>grad[id] = before[id] (accumulate) or 0, plus Σ weight · dx[position] over the positions of id; rows no bag holds unchanged.</summary>
    public static void CheckGradients(float[] before, float[] grad, int dim, float[] dx, int stride, int offset, float[] weights, int[] ids, int bagLength,
        int[] rows, bool accumulate)
    {
        var expected = before.Select(g => (double)g).ToArray();
        var touched = new HashSet<int>();
        for (var p = 0; p < rows.Length; p++)
        for (var j = 0; j < bagLength; j++)
        {
            var id = ids[rows[p] * bagLength + j];
            if (id < 0)
                continue;
            if (touched.Add(id) && !accumulate)
                Array.Clear(expected, id * dim, dim);
            for (var d = 0; d < dim; d++)
                expected[id * dim + d] += weights[p * bagLength + j] * dx[p * stride + offset + d];
        }
        for (var i = 0; i < grad.Length; i++)
        {
            if (touched.Contains(i / dim))
                Assert.Equal(expected[i], grad[i], 1e-5);
            else
                Assert.Equal(before[i], grad[i]);   // NaN stays NaN: not written
        }
    }
}

/// <summary>The SIMD backend's embedding tables: the batch gather, the per-row gradient sums and their row groups. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdEmbeddingTests
{
    [Fact]
    public void EmbeddingBagPoolsAMaskedWeightedMeanByHand()
    {
        const int dim = 2, length = 3;
        var table = new float[] { 0, 0, 1, 2, 3, 4, 10, 20 };   // rows 0..3
        int[] ids = [1, -1, 3, /* bag 1: empty */ -1, -1, -1, /* bag 2 */ 2, 2, -1];
        float[] recency = [1f, 0.5f, 1f / 3];
        var (x, weights) = (Reference.Poisoned(3 * dim), Reference.Poisoned(3 * length));
        new ArrayOps(new SimdKernels(1)).EmbeddingBagGather(table, dim, ids, length, recency, [0, 1, 2], x, dim, 0, weights);
        // Bag 0: weights 1 and 1/3 over 4/3 → 3/4 and 1/4: 0.75·(1,2) + 0.25·(10,20). Bag 1: zeros. Bag 2: a repeat counts twice, (3,4).
        Assert.All(x.Zip([0.75 * 1 + 0.25 * 10, 0.75 * 2 + 0.25 * 20, 0, 0, 3, 4]), p => Assert.Equal(p.Second, p.First, 1e-6));
        Assert.All(weights.Zip([0.75, 0, 0.25, 0, 0, 0, 1 / 1.5, 0.5 / 1.5, 0]), p => Assert.Equal(p.Second, p.First, 1e-6));
    }

    [Theory]
    [InlineData(16, false)]
    [InlineData(5, true)]
    public void EmbeddingBagGatherAndRowGradientsMatchFloat64Reference(int dim, bool accumulate)
    {
        BagReference.GatherAndRowGradientsMatch(new ArrayOps(new SimdKernels(2)), dim, length: 6, tableRows: 11, bags: 40, stride: 30, offset: 7,
            rows: [.. Enumerable.Range(0, 25).Select(i => i * 7 % 40)], seed: 1, accumulate);
    }

    [Fact]
    public void ZeroRowsClearsTheListedRowsOnly()
    {
        var table = Enumerable.Range(1, 12).Select(i => (float)i).ToArray();
        new ArrayOps(new SimdKernels(1)).ZeroRows(table, 3, [2, 0]);
        Assert.Equal([0f, 0, 0, 4, 5, 6, 0, 0, 0, 10, 11, 12], table);
    }

    /// <summary>Bags and a second source in one grouping (a shared table): empty slots left out, positions continuing across sources.</summary>
    [Fact]
    public void RowGroupsGroupBagsAndSeveralSourcesWithContinuingPositions()
    {
        var kernels = new SimdKernels(1);
        using var groups = new RowGroups(kernels, 2 * 3 + 2);
        int[] bags = [5, -1, 7, /* row 1 */ 9, 9, -1, /* row 2 */ 7, 5, 2];
        int[] column = [7, 4, 9];
        int[] batchRows = [2, 0];
        groups.Begin();
        groups.Add(column, 1, batchRows);   // positions 0, 1: ids 9, 7
        groups.Add(bags, 3, batchRows);     // positions 2..7: ids 7, 5, 2, 5, −1, 7
        groups.Finish();
        groups.Upload();
        var (rows, starts, positions) = (new int[groups.Count], new int[groups.Count + 1], new int[7]);
        kernels.CopyToHost(groups.Rows, rows);
        kernels.CopyToHost(groups.Starts, starts);
        kernels.CopyToHost(groups.Positions, positions);
        Assert.Equal([9, 7, 5, 2], rows);
        Assert.Equal([0, 1, 4, 6, 7], starts);
        Assert.Equal([0, 1, 2, 7, 3, 5, 4], positions);
    }

    [Fact]
    public void EmbeddingGatherAndRowGradientsMatchHandComputedRows()
    {
        const int dim = 3, stride = 5, offset = 1;
        var table = Enumerable.Range(0, 4 * dim).Select(i => (float)i).ToArray();
        int[] column = [9, 2, 0, 1];
        int[] rows = [1, 2, 1];   // ids 2, 0, 2
        int[] ids = rows.Select(r => column[r]).ToArray();
        var x = Reference.Poisoned(rows.Length * stride);
        var kernels = new ArrayOps(new SimdKernels(1));
        kernels.EmbeddingGather(table, dim, column, rows, x, stride, offset);
        Assert.Equal([6f, 7, 8], x.AsSpan(1, 3).ToArray());
        Assert.Equal([0f, 1, 2], x.AsSpan(6, 3).ToArray());
        Assert.Equal([6f, 7, 8], x.AsSpan(11, 3).ToArray());

        var grad = Reference.Poisoned(4 * dim);
        var dx = Enumerable.Range(0, ids.Length * stride).Select(i => (float)i).ToArray();
        kernels.EmbeddingRowGradients(dx, stride, offset, dim, ids, grad);
        // Row 2 gets rows 0 and 2 of dx (repeated ids accumulate), row 0 gets row 1; rows 1 and 3 are not written.
        Assert.Equal([1f + 11, 2 + 12, 3 + 13], grad.AsSpan(6, 3).ToArray());
        Assert.Equal([6f, 7, 8], grad.AsSpan(0, 3).ToArray());
        Assert.All(grad.AsSpan(3, 3).ToArray().Concat(grad.AsSpan(9, 3).ToArray()), g => Assert.True(float.IsNaN(g)));
    }

    /// <summary>Row groups against a plain dictionary grouping, over several batches through one instance (the hash table is reused).</summary>
    [Fact]
    public void RowGroupsListEachDistinctIdWithItsPositionsInBatchOrder()
    {
        var kernels = new SimdKernels(1);
        using var groups = new RowGroups(kernels, 300);
        var rng = new Rng(8);
        var column = Enumerable.Range(0, 5000).Select(_ => (int)(rng.NextDouble() * 120) * 9973).ToArray();   // repeats, large ids
        foreach (var (start, n) in new[] { (0, 300), (1000, 17), (4000, 300), (0, 0), (2500, 1) })
        {
            var batchRows = Enumerable.Range(start, n).ToArray();
            groups.Build(column, batchRows);
            groups.Upload();
            var expected = batchRows.Select((row, p) => (Id: column[row], Position: p)).GroupBy(x => x.Id)
                .Select(g => (g.Key, g.Select(x => x.Position).ToArray())).ToArray();   // first-appearance order, positions ascending
            var (rows, starts, positions) = (new int[groups.Count], new int[groups.Count + 1], new int[n]);
            kernels.CopyToHost(groups.Rows, rows);
            kernels.CopyToHost(groups.Starts, starts);
            kernels.CopyToHost(groups.Positions, positions);
            Assert.Equal(expected.Select(e => e.Key), rows);
            for (var u = 0; u < rows.Length; u++)
                Assert.Equal(expected[u].Item2, positions[starts[u]..starts[u + 1]]);
        }
    }
}

/// <summary>The ILGPU kernels for embedding tables: the batch gather, the per-row gradient sums and their row groups, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuEmbeddingTests(IlgpuCpu ilgpu)
{
    readonly ArrayOps gpu = new(ilgpu.Kernels);
    readonly ArrayOps simd = new(new SimdKernels(2));

    [Fact]
    public void EmbeddingGatherAndDeterministicRowGradientsMatchSimd()
    {
        const int dim = 16, stride = 21, offset = 3, rows = 100, tableRows = 30;
        var table = Reference.Random(tableRows * dim, 5);
        var column = Enumerable.Range(0, 3 * rows).Select(i => i * 7 % tableRows).ToArray();
        var batchRows = Enumerable.Range(0, rows).Select(i => i * 31 % column.Length).ToArray();
        var ids = batchRows.Select(r => column[r]).ToArray();
        var (xg, xs) = (Reference.Poisoned(rows * stride), Reference.Poisoned(rows * stride));
        gpu.EmbeddingGather(table, dim, column, batchRows, xg, stride, offset);
        simd.EmbeddingGather(table, dim, column, batchRows, xs, stride, offset);
        for (var r = 0; r < rows; r++)
            Assert.Equal(xs.AsSpan(r * stride + offset, dim).ToArray(), xg.AsSpan(r * stride + offset, dim).ToArray());

        var dx = Reference.Random(rows * stride, 6);
        var (gg, gs) = (Reference.Poisoned(tableRows * dim), Reference.Poisoned(tableRows * dim));
        gpu.EmbeddingRowGradients(dx, stride, offset, dim, ids, gg);
        simd.EmbeddingRowGradients(dx, stride, offset, dim, ids, gs);
        Assert.Equal(gs, gg);  // same additions in the same (batch) order; the same rows left unwritten
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EmbeddingBagGatherAndRowGradientsMatchFloat64Reference(bool accumulate)
    {
        const int dim = 16, tableRows = 13;
        BagReference.GatherAndRowGradientsMatch(gpu, dim, length: 5, tableRows, bags: 50, stride: 40, offset: 9,
            rows: [.. Enumerable.Range(0, 30).Select(i => i * 11 % 50)], seed: 7, accumulate);

        var table = Reference.Random(tableRows * dim, 7);
        var zeroed = table.ToArray();
        gpu.ZeroRows(zeroed, dim, [3, 12]);
        for (var i = 0; i < zeroed.Length; i++)
            Assert.Equal(i / dim is 3 or 12 ? 0f : table[i], zeroed[i]);
    }
}
