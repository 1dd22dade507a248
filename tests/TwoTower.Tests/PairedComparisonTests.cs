using TwoTower.Evaluation;

namespace TwoTower.Tests;

public sealed class PairedComparisonTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("twotower-compare-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string Write(string name, string text)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void PairsCustomersByIdAndGivesTheHandComputedDifferenceAndError()
    {
        // The baseline lists the customers in another order and has a method this run lacks; one id holds a comma and a quote.
        var run = Write("run.csv", "customer_id,blend,popularity\n\"c1\",0.5,0.1\n\"c,2\"\"\",0.25,0\n\"c3\",1,0.2\n");
        var baseline = Write("baseline.csv", "customer_id,two_tower,popularity,blend\n\"c3\",0.9,0.2,0.5\n\"c1\",0,0.1,0.5\n\"c,2\"\"\",0,0,0\n");

        var rows = PairedComparison.Compare(run, baseline);

        Assert.Equal(["blend", "popularity"], rows.Select(r => r.Method));
        var blend = rows[0];
        // Differences by customer: c1 0, c,2" 0.25, c3 0.5: mean 0.25, sample SD √((0.25² + 0 + 0.25²) / 2) = 0.25, SE 0.25 / √3.
        Assert.Equal(3, blend.Customers);
        Assert.Equal(1.75 / 3, blend.Map12, 12);
        Assert.Equal(1.0 / 3, blend.BaselineMap12, 12);
        Assert.Equal(0.25, blend.Difference, 12);
        Assert.Equal(0.25 / Math.Sqrt(3), blend.StandardError, 12);
        Assert.Equal(0, rows[1].Difference);
        Assert.Equal(0, rows[1].StandardError);
        Assert.Contains("| blend | 0.5833 | 0.3333 | +0.2500 ± 0.1443 |", PairedComparison.Table(rows));
    }

    /// <summary>Pooling windows equals comparing their customers stacked in one file: mean and sample SD in plain loops.</summary>
    [Fact]
    public void PooledWindowsEqualTheirCustomersStacked()
    {
        var rng = new Random(7);
        var windows = new[] { 5, 9, 2 }.Select(n => Enumerable.Range(0, n).Select(_ => (Run: rng.NextDouble(), Baseline: rng.NextDouble())).ToArray()).ToArray();
        string Csv(IEnumerable<(double Run, double Baseline)> rows, Func<(double Run, double Baseline), double> pick) =>
            "customer_id,blend\n" + string.Concat(rows.Select((r, i) => FormattableString.Invariant($"c{i},{pick(r):R}\n")));
        var perWindow = windows.Select((rows, w) => PairedComparison.Compare(Write($"run{w}.csv", Csv(rows, r => r.Run)),
            Write($"baseline{w}.csv", Csv(rows, r => r.Baseline)))[0]).ToList();

        var pooled = PairedComparison.Pool(perWindow);

        var differences = windows.SelectMany(rows => rows.Select(r => r.Run - r.Baseline)).ToArray();
        double sum = 0, squares = 0;
        foreach (var d in differences)
            sum += d;
        var mean = sum / differences.Length;
        foreach (var d in differences)
            squares += (d - mean) * (d - mean);
        Assert.Equal(16, pooled.Customers);
        Assert.Equal(mean, pooled.Difference, 12);
        Assert.Equal(Math.Sqrt(squares / (differences.Length - 1) / differences.Length), pooled.StandardError, 12);
        Assert.Equal(windows.SelectMany(rows => rows).Average(r => r.Run), pooled.Map12, 12);
        Assert.Equal(windows.SelectMany(rows => rows).Average(r => r.Baseline), pooled.BaselineMap12, 12);
    }

    [Theory]
    [InlineData("customer_id,blend\n\"c1\",0.5\n\"c9\",0.5\n", "different customers (1 only in the first, 1 only in the second)")]
    [InlineData("customer_id,blend\n\"c1\",0.5\n\"c1\",0.5\n", ":3: customer 'c1' appears twice")]
    [InlineData("customer_id,blend\n\"c1\",0.5\n\"c2\",1.5\n", ":3: column 'blend' (column 2): '1.5' is not an AP@12")]
    [InlineData("customer_id,ease\n\"c1\",0.5\n\"c2\",0.5\n", "share no method")]
    [InlineData("customer,blend\n\"c1\",0.5\n\"c2\",0.5\n", "expected Evaluate's per_customer_ap12.csv")]
    [InlineData("customer_id,blend\n\"c1\",0.5\n\"c2\"\n", "malformed CSV")]
    public void RefusesFilesThatDoNotPair(string runText, string expected)
    {
        var run = Write("run.csv", runText);
        var baseline = Write("baseline.csv", "customer_id,blend\n\"c1\",0.25\n\"c2\",0.5\n");

        var error = Assert.Throws<PipelineError>(() => PairedComparison.Compare(run, baseline));

        Assert.Contains(expected, error.Message);
    }
}
