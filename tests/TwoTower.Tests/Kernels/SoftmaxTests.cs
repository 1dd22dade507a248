using System.Runtime.Intrinsics;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>Float64 reference of the in-batch softmax (TFRS Retrieval loss), forward and backward.</summary>
public static partial class Reference
{
    /// <summary>TFRS Retrieval loss per row and its gradients, from the full logits matrix.</summary>
    public static (double[] Loss, double[] Dq, double[] Dc) InBatchSoftmax(
        double[] q, double[] c, int rows, int dim, double[]? columnOffset, double temperature, int[]? itemIds)
    {
        var logits = new double[rows, rows];
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < rows; j++)
        {
            double s = 0;
            for (var d = 0; d < dim; d++)
                s += q[i * dim + d] * c[j * dim + d];
            logits[i, j] = s / temperature - (columnOffset?[j] ?? 0);
            if (itemIds != null && j != i && itemIds[j] == itemIds[i])
                logits[i, j] = double.NegativeInfinity;
        }
        var loss = new double[rows];
        var dq = new double[rows * dim];
        var dc = new double[rows * dim];
        for (var i = 0; i < rows; i++)
        {
            var max = double.NegativeInfinity;
            for (var j = 0; j < rows; j++)
                max = Math.Max(max, logits[i, j]);
            double sum = 0;
            for (var j = 0; j < rows; j++)
                sum += Math.Exp(logits[i, j] - max);
            loss[i] = max + Math.Log(sum) - logits[i, i];
            for (var j = 0; j < rows; j++)
            {
                var g = (Math.Exp(logits[i, j] - max) / sum - (i == j ? 1 : 0)) / temperature;
                for (var d = 0; d < dim; d++)
                {
                    dq[i * dim + d] += g * c[j * dim + d];
                    dc[j * dim + d] += g * q[i * dim + d];
                }
            }
        }
        return (loss, dq, dc);
    }
}

/// <summary>The SIMD backend's the in-batch softmax (TFRS Retrieval loss), forward and backward. Checked against the float64 reference or hand-computed cases, outputs poisoned first.</summary>
public class SimdSoftmaxTests
{
    const double Tolerance = 1e-4;

    [Theory]
    [InlineData(1, 64, 16, false, 1.0, false)]
    [InlineData(2, 256, 16, true, 1.0, false)]
    [InlineData(2, 37, 16, true, 0.5, true)]
    [InlineData(2, 30, 5, false, 2.0, true)]
    [InlineData(3, 130, 16, true, 1.0, true)]
    [InlineData(2, 70, 48, true, 0.5, true)]   // register blocks over 3 × 16 dimensions
    [InlineData(2, 41, 20, false, 1.0, false)] // blocked logits, the general backward
    public void InBatchSoftmaxMatchesReference(int threads, int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        CheckInBatchSoftmax(new SimdKernels(threads), rows, dim, logQ, temperature, accidentalHits);

    /// <summary>One backend's in-batch softmax against the float64 reference on fresh inputs, outputs poisoned first.</summary>
    /// <param name="sameItemRun">0: item ids i mod 7; n: runs of n consecutive rows share an item (whole column chunks masked).</param>
    internal static void CheckInBatchSoftmax(IKernels backend, int rows, int dim, bool logQ, double temperature, bool accidentalHits, int sameItemRun = 0)
    {
        var kernels = new ArrayOps(backend);
        var q = Reference.Random(rows * dim, 7, 0.8);
        var c = Reference.Random(rows * dim, 8, 0.8);
        var offset = logQ ? Reference.Random(rows, 9, 3).Select(v => v - 4).ToArray() : null;
        var ids = accidentalHits ? Enumerable.Range(0, rows).Select(i => sameItemRun > 0 ? i / sameItemRun : i % 7).ToArray() : null;
        var (loss, dq, dc) = (Reference.Poisoned(rows), Reference.Poisoned(rows * dim), Reference.Poisoned(rows * dim));
        kernels.InBatchSoftmax(q, c, rows, dim, offset, (float)temperature, ids, loss, dq, dc);
        var expected = Reference.InBatchSoftmax(Reference.ToDouble(q), Reference.ToDouble(c), rows, dim,
            offset == null ? null : Reference.ToDouble(offset), temperature, ids);
        Assert.True(Reference.MaxRelativeError(loss, expected.Loss) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dq, expected.Dq) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dc, expected.Dc) < Tolerance);
        if (backend is SimdKernels)
            return;
        // Another backend also against the SIMD one on the same inputs.
        var (simdLoss, simdDq, simdDc) = (Reference.Poisoned(rows), Reference.Poisoned(rows * dim), Reference.Poisoned(rows * dim));
        new ArrayOps(new SimdKernels(2)).InBatchSoftmax(q, c, rows, dim, offset, (float)temperature, ids, simdLoss, simdDq, simdDc);
        Assert.True(Reference.MaxRelativeError(loss, Reference.ToDouble(simdLoss)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dq, Reference.ToDouble(simdDq)) < Tolerance);
        Assert.True(Reference.MaxRelativeError(dc, Reference.ToDouble(simdDc)) < Tolerance);
    }

    [Fact]
    public void InBatchSoftmaxLossAtZeroEmbeddingsIsLogBatchSize()
    {
        const int rows = 2048, dim = 16;
        var loss = Reference.Poisoned(rows);
        new ArrayOps(new SimdKernels(2)).InBatchSoftmax(new float[rows * dim], new float[rows * dim], rows, dim, null, 1, null, loss,
            new float[rows * dim], new float[rows * dim]);
        Assert.All(loss, l => Assert.Equal(Math.Log(rows), l, 4));
    }

    [Fact]
    public void FastExpMatchesMathExp()
    {
        double worst = 0;
        for (var x = -87.0; x <= 0; x += 0.001)
        {
            var actual = SimdKernels.FastExp(Vector256.Create((float)x))[0];
            var expected = Math.Exp((float)x);
            worst = Math.Max(worst, Math.Abs(actual - expected) / expected);
        }
        Assert.True(worst < 1e-6, $"relative error {worst}");
        Assert.Equal(0f, SimdKernels.FastExp(Vector256.Create(float.NegativeInfinity))[0]);
        Assert.Equal(0f, SimdKernels.FastExp(Vector256.Create(-100f))[0]);
    }
}

/// <summary>The ILGPU kernels for the in-batch softmax (TFRS Retrieval loss), forward and backward, on ILGPU's CPU accelerator. Checked against the reference and the SIMD backend on the same inputs.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuSoftmaxTests(IlgpuCpu ilgpu)
{
    [Theory]
    [InlineData(64, 16, false, 1.0, false)]
    [InlineData(130, 16, true, 0.5, true)]
    [InlineData(37, 5, true, 2.0, false)]
    public void InBatchSoftmaxMatchesReference(int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        SimdSoftmaxTests.CheckInBatchSoftmax(ilgpu.Kernels, rows, dim, logQ, temperature, accidentalHits);

    /// <summary>64 rows in chunks of 2 columns, items shared by runs of 4 rows: some chunks are entirely −∞.</summary>
    [Fact]
    public void InBatchSoftmaxWithWholeChunksMaskedMatchesReference() =>
        SimdSoftmaxTests.CheckInBatchSoftmax(ilgpu.Kernels, 64, 16, true, 1.0, true, sameItemRun: 4);
}
