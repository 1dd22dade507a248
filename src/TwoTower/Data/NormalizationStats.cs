using System.Text.Json;

namespace TwoTower.Data;

/// <summary>Keras <c>Normalization(axis=None)</c> statistics of one column.</summary>
public sealed record NormalizationStats(double Mean, double Variance, double Std, long Count, bool Normalized = true)
{
    /// <summary>Every numeric column's statistics (artifacts/normalize and a package).</summary>
    public const string FileName = "normalization.json";

    /// <summary>The statistics from a folder holding normalization.json (artifacts/normalize or a package).</summary>
    public static Dictionary<string, NormalizationStats> ReadAll(string dir) =>
        JsonSerializer.Deserialize<Dictionary<string, NormalizationStats>>(File.ReadAllText(Path.Combine(dir, FileName)))!;

    /// <summary>Population mean and variance of the finite values (float64 accumulation); std floored at epsilon.</summary>
    public static NormalizationStats Fit(ReadOnlySpan<float> values, double epsilon)
    {
        double sum = 0;
        long n = 0;
        foreach (var v in values)
        {
            if (float.IsFinite(v))
            {
                sum += v;
                n++;
            }
        }
        var mean = n > 0 ? sum / n : 0;
        double squares = 0;
        foreach (var v in values)
        {
            if (float.IsFinite(v))
                squares += (v - mean) * (v - mean);
        }
        var variance = n > 0 ? squares / n : 0;
        return new NormalizationStats(mean, variance, Math.Max(Math.Sqrt(variance), epsilon), n);
    }

    /// <summary>(x − μ) / std when normalized, else x; a missing value becomes the mean first.</summary>
    public float[] Apply(ReadOnlySpan<float> values)
    {
        var output = new float[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            var x = float.IsFinite(values[i]) ? values[i] : Mean;
            output[i] = Normalized ? (float)((x - Mean) / Std) : (float)x;
        }
        return output;
    }
}
