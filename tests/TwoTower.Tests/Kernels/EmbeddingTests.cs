using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>The SIMD backend's embedding tables: the batch gather, the per-row gradient sums and their row groups. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdEmbeddingTests
{
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
}
