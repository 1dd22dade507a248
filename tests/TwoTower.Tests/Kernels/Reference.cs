namespace TwoTower.Tests.Kernels;

/// <summary>
/// Float64 references in plain loops: what each op of the kernel seam computes, written the
/// obvious way; both backends are compared against these. Each op family's reference sits in its
/// test file (Kernels/&lt;Family&gt;Tests.cs); this part holds what they share.
/// </summary>
public static partial class Reference
{
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
