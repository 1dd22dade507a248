namespace TwoTower.Tests;

/// <summary>
/// Float64 references in plain loops: what each op of the kernel seam computes, written the
/// obvious way. The SIMD backend is compared against these.
/// </summary>
public static class Reference
{
    public static double[] DenseForward(float[] x, int rows, int inDim, float[] w, float[] b, int outDim, bool relu)
    {
        var y = new double[rows * outDim];
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            double s = b[o];
            for (var k = 0; k < inDim; k++)
                s += (double)x[r * inDim + k] * w[k * outDim + o];
            y[r * outDim + o] = relu ? Math.Max(s, 0) : s;
        }
        return y;
    }

    public static (double[] Dw, double[] Db, double[] Dx) DenseBackward(float[] x, int rows, int inDim, float[] w, int outDim, float[] dy)
    {
        var dw = new double[inDim * outDim];
        var db = new double[outDim];
        var dx = new double[rows * inDim];
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            double g = dy[r * outDim + o];
            db[o] += g;
            for (var k = 0; k < inDim; k++)
            {
                dw[k * outDim + o] += (double)x[r * inDim + k] * g;
                dx[r * inDim + k] += (double)w[k * outDim + o] * g;
            }
        }
        return (dw, db, dx);
    }

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

    public static double[] ToDouble(float[] a) => a.Select(x => (double)x).ToArray();

    /// <summary>Max over elements of |a − b| / max(|b|, floor): relative error with a floor for values near 0.</summary>
    public static double MaxRelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double floor = 1e-2)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (var i = 0; i < actual.Length; i++)
        {
            var e = Math.Abs(actual[i] - expected[i]) / Math.Max(Math.Abs(expected[i]), floor);
            if (double.IsNaN(e))
                return double.PositiveInfinity;
            worst = Math.Max(worst, e);
        }
        return worst;
    }

    public static float[] Random(int length, int seed, double scale = 1)
    {
        var rng = new Rng((ulong)seed);
        return Enumerable.Range(0, length).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
    }

    public static float[] Poisoned(int length) => Enumerable.Repeat(float.NaN, length).ToArray();
}
