namespace TwoTower;

/// <summary>
/// SplitMix64: a small, fast, seedable generator whose sequence this project owns, so the same
/// seed gives the same numbers on every .NET version and machine.
/// </summary>
public struct Rng(ulong seed)
{
    ulong state = seed;

    public ulong NextUInt64()
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, n).</summary>
    public int NextInt(int n) => (int)((NextUInt64() >> 32) * (ulong)n >> 32);

    public double NextGaussian()
    {
        var u = 1.0 - NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * NextDouble());
    }

    /// <summary>Fisher-Yates shuffle.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

/// <summary>Walker's alias table: O(1) draws from a fixed discrete distribution.</summary>
public sealed class AliasTable
{
    readonly double[] prob;
    readonly int[] alias;
    readonly int[] items;

    public AliasTable(IReadOnlyList<int> items, IReadOnlyList<double> weights)
    {
        var n = items.Count;
        this.items = items.ToArray();
        prob = new double[n];
        alias = new int[n];
        var total = weights.Sum();
        var scaled = weights.Select(w => w * n / total).ToArray();
        var small = new Stack<int>();
        var large = new Stack<int>();
        for (var i = 0; i < n; i++)
            (scaled[i] < 1 ? small : large).Push(i);
        while (small.Count > 0 && large.Count > 0)
        {
            var s = small.Pop();
            var l = large.Pop();
            prob[s] = scaled[s];
            alias[s] = l;
            scaled[l] -= 1 - scaled[s];
            (scaled[l] < 1 ? small : large).Push(l);
        }
        foreach (var i in small.Concat(large))
            prob[i] = 1;
    }

    public int Count => items.Length;

    public int Sample(ref Rng rng)
    {
        var i = rng.NextInt(items.Length);
        return items[rng.NextDouble() < prob[i] ? i : alias[i]];
    }
}
