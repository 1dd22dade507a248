using System.Runtime.Intrinsics;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;

namespace TwoTower.Tests.Kernels;

/// <summary>Float64 reference of the in-batch softmax (TFRS Retrieval loss), forward and backward.</summary>
public static partial class Reference
{
    /// <summary>
    /// TFRS Retrieval loss per row and its gradients, from the full logits matrix. repeat: entries
    /// (i, j, slot) adding bias[slot] to logit (i, j); BiasGrad[slot] sums their ∂loss/∂logit.
    /// </summary>
    public static (double[] Loss, double[] Dq, double[] Dc, double[] BiasGrad) InBatchSoftmax(
        double[] q, double[] c, int rows, int dim, double[]? columnOffset, double temperature, int[]? itemIds,
        (int Row, int Column, int Slot)[]? repeat = null, double[]? bias = null)
    {
        var logits = new double[rows, rows];
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < rows; j++)
        {
            double s = 0;
            for (var d = 0; d < dim; d++)
                s += q[i * dim + d] * c[j * dim + d];
            logits[i, j] = s / temperature - (columnOffset?[j] ?? 0);
            foreach (var e in repeat ?? [])
            {
                if (e.Row == i && e.Column == j)
                    logits[i, j] += bias![e.Slot];
            }
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
        var biasGrad = new double[bias?.Length ?? 0];
        foreach (var e in repeat ?? [])
        {
            var (i, j) = (e.Row, e.Column);
            var max = Enumerable.Range(0, rows).Max(k => logits[i, k]);
            var sum = Enumerable.Range(0, rows).Sum(k => Math.Exp(logits[i, k] - max));
            biasGrad[e.Slot] += Math.Exp(logits[i, j] - max) / sum - (i == j ? 1 : 0);
        }
        return (loss, dq, dc, biasGrad);
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

    [Theory]
    [InlineData(1, 40, 16, false, 1.0, false)]
    [InlineData(3, 70, 16, true, 0.2, true)]
    [InlineData(2, 33, 7, true, 0.5, true)]
    public void InBatchSoftmaxWithRepeatBiasMatchesReference(int threads, int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        CheckInBatchSoftmax(new SimdKernels(threads), rows, dim, logQ, temperature, accidentalHits, repeat: true);

    /// <summary>One backend's in-batch softmax against the float64 reference on fresh inputs, outputs poisoned first.</summary>
    /// <param name="sameItemRun">0: item ids i mod 7; n: runs of n consecutive rows share an item (whole column chunks masked).</param>
    /// <param name="repeat">With repeat-bias entries: 0 to 3 per row over 5 slots, some on the diagonal, some on masked logits.</param>
    internal static void CheckInBatchSoftmax(IKernels backend, int rows, int dim, bool logQ, double temperature, bool accidentalHits, int sameItemRun = 0,
        bool repeat = false)
    {
        var q = Reference.Random(rows * dim, 7, 0.8);
        var c = Reference.Random(rows * dim, 8, 0.8);
        var offset = logQ ? Reference.Random(rows, 9, 3).Select(v => v - 4).ToArray() : null;
        var ids = accidentalHits ? Enumerable.Range(0, rows).Select(i => sameItemRun > 0 ? i / sameItemRun : i % 7).ToArray() : null;
        var entries = repeat ? RepeatEntries(rows) : null;
        var bias = repeat ? Reference.Random(5, 10, 2) : null;
        var run = Run(backend, q, c, rows, dim, offset, temperature, ids, entries, bias);
        var expected = Reference.InBatchSoftmax(Reference.ToDouble(q), Reference.ToDouble(c), rows, dim,
            offset == null ? null : Reference.ToDouble(offset), temperature, ids, entries, bias == null ? null : Reference.ToDouble(bias));
        AssertClose(run.Loss, expected.Loss);
        AssertClose(run.Dq, expected.Dq);
        AssertClose(run.Dc, expected.Dc);
        if (repeat)
            AssertClose(run.BiasGradient, expected.BiasGrad);
        if (backend is SimdKernels)
            return;
        // Another backend also against the SIMD one on the same inputs.
        var simd = Run(new SimdKernels(2), q, c, rows, dim, offset, temperature, ids, entries, bias);
        AssertClose(run.Loss, Reference.ToDouble(simd.Loss));
        AssertClose(run.Dq, Reference.ToDouble(simd.Dq));
        AssertClose(run.Dc, Reference.ToDouble(simd.Dc));
        if (repeat)
            AssertClose(run.BiasGradient, Reference.ToDouble(simd.BiasGradient));
    }

    static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(actual))] string what = "")
    {
        var error = Reference.MaxRelativeError(actual, expected);
        Assert.True(error < Tolerance, $"{what}: relative error {error}");
    }

    /// <summary>Row i: i mod 4 entries, the first on the diagonal when i is a multiple of 3, slots cycling over 5.</summary>
    static (int Row, int Column, int Slot)[] RepeatEntries(int rows) =>
        Enumerable.Range(0, rows).SelectMany(i => Enumerable.Range(0, i % 4)
            .Select(t => (i, t == 0 && i % 3 == 0 ? i : (i + 1 + 11 * t) % rows, (i + 2 * t) % 5))).ToArray();

    static (float[] Loss, float[] Dq, float[] Dc, float[] BiasGradient) Run(IKernels backend, float[] q, float[] c, int rows, int dim,
        float[]? offset, double temperature, int[]? ids, (int Row, int Column, int Slot)[]? entries, float[]? bias)
    {
        var (loss, dq, dc) = (Reference.Poisoned(rows), Reference.Poisoned(rows * dim), Reference.Poisoned(rows * dim));
        var biasGradient = Reference.Poisoned(bias?.Length ?? 0);
        var starts = new int[rows + 1];
        foreach (var e in entries ?? [])
            starts[e.Row + 1]++;
        for (var i = 0; i < rows; i++)
            starts[i + 1] += starts[i];
        var repeat = entries == null ? ((int[], int[], int[], float[], float[])?)null
            : (starts, entries.Select(e => e.Column).ToArray(), entries.Select(e => e.Slot).ToArray(), bias!, biasGradient);
        new ArrayOps(backend).InBatchSoftmax(q, c, rows, dim, offset, (float)temperature, ids, loss, dq, dc, repeat);
        return (loss, dq, dc, biasGradient);
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

    [Theory]
    [InlineData(40, 16, false, 1.0, false)]
    [InlineData(70, 16, true, 0.5, true)]
    public void InBatchSoftmaxWithRepeatBiasMatchesReference(int rows, int dim, bool logQ, double temperature, bool accidentalHits) =>
        SimdSoftmaxTests.CheckInBatchSoftmax(ilgpu.Kernels, rows, dim, logQ, temperature, accidentalHits, repeat: true);
}
