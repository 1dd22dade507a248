namespace TwoTower.Data;

/// <summary>
/// Keras <c>StringLookup(vocabulary=train.unique(), mask_token=None)</c>: known values in
/// first-seen order of the training data (the training <see cref="Levels"/>) get 1..n; index 0 is
/// the one out-of-vocabulary slot.
/// </summary>
public sealed class Vocabulary
{
    public const int OutOfVocabulary = 0;

    readonly Dictionary<string, int> index;

    public IReadOnlyList<string> Values { get; }

    /// <summary>Known values; an embedding or one-hot over it has Count + 1 rows.</summary>
    public int Count => Values.Count;

    public Vocabulary(IReadOnlyList<string> values)
    {
        Values = values;
        index = new Dictionary<string, int>(values.Count, StringComparer.Ordinal);
        for (var i = 0; i < values.Count; i++)
        {
            if (!index.TryAdd(values[i], i + 1))
                throw new ArgumentException($"vocabulary value '{values[i]}' appears twice");
        }
    }

    public int this[string value] => index.GetValueOrDefault(value, OutOfVocabulary);

    public int[] Encode(IReadOnlyList<string> values)
    {
        var ids = new int[values.Count];
        for (var i = 0; i < ids.Length; i++)
            ids[i] = this[values[i]];
        return ids;
    }

    /// <summary>The value of id (the empty string for the out-of-vocabulary slot).</summary>
    public string Decode(int id) => id == OutOfVocabulary ? "" : Values[id - 1];
}

/// <summary>Keras <c>Normalization(axis=None)</c> statistics of one column.</summary>
public sealed record NormalizationStats(double Mean, double Variance, double Std, long Count, bool Normalized = true)
{
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
