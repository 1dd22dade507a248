using System.Globalization;
using nietras.SeparatedValues;
using TwoTower.Data;

namespace TwoTower.Evaluation;

/// <summary>
/// Two Evaluate runs on the same validation data, customer by customer (their <c>per_customer_ap12.csv</c>):
/// for every method both evaluated, each run's MAP@12 and the difference with its paired standard error,
/// the sample standard deviation of the per-customer AP@12 differences over √customers. Pairing removes
/// what the customers themselves contribute to the spread (some baskets are easy for every method), so a
/// difference of a few thousandths can be told from noise that two unpaired means would hide.
/// </summary>
public static class PairedComparison
{
    /// <param name="Difference">Map12 − BaselineMap12.</param>
    public sealed record Row(string Method, int Customers, double Map12, double BaselineMap12, double Difference, double StandardError);

    /// <summary>Pairs the two files' customers (the same set, in any order) and compares every method they share, in this run's order.</summary>
    public static IReadOnlyList<Row> Compare(string csv, string baselineCsv)
    {
        var (methods, ap) = Read(csv);
        var (baselineMethods, baselineAp) = Read(baselineCsv);
        var onlyHere = ap.Keys.Count(c => !baselineAp.ContainsKey(c));
        var onlyThere = baselineAp.Keys.Count(c => !ap.ContainsKey(c));
        if (onlyHere > 0 || onlyThere > 0)
            throw new PipelineError($"{csv} and {baselineCsv} were evaluated on different customers ({onlyHere:N0} only in the first, " +
                                    $"{onlyThere:N0} only in the second): compare two runs on the same validation data");
        var shared = methods.Where(baselineMethods.Contains).ToArray();
        if (shared.Length == 0)
            throw new PipelineError($"{csv} and {baselineCsv} share no method: the first has {string.Join(", ", methods)}; " +
                                    $"the second {string.Join(", ", baselineMethods)}");
        var customers = ap.Keys.ToArray();
        return shared.Select(method =>
        {
            var (m, b) = (Array.IndexOf(methods, method), Array.IndexOf(baselineMethods, method));
            var differences = customers.Select(c => ap[c][m] - baselineAp[c][b]).ToArray();
            var mean = differences.Average();
            var variance = differences.Length > 1 ? differences.Sum(d => (d - mean) * (d - mean)) / (differences.Length - 1) : double.NaN;
            return new Row(method, customers.Length, customers.Average(c => ap[c][m]), customers.Average(c => baselineAp[c][b]),
                mean, Math.Sqrt(variance / differences.Length));
        }).ToList();
    }

    /// <summary>
    /// Several comparisons of one method (Backtest's windows) as one: every window's customers stacked as
    /// pairs of their own (a customer of two windows counts twice), so the mean difference weighs each
    /// window by its customers. Exact from the rows alone: the stacked sample variance is the windows'
    /// within-window sums of squares plus their customers times their mean's squared distance from the
    /// pooled mean, over N − 1.
    /// </summary>
    public static Row Pool(IReadOnlyList<Row> rows)
    {
        var n = rows.Sum(r => r.Customers);
        double Weighted(Func<Row, double> value) => rows.Sum(r => r.Customers * value(r)) / n;
        var mean = Weighted(r => r.Difference);
        var squares = rows.Sum(r => (r.Customers > 1 ? (r.Customers - 1) * r.StandardError * r.StandardError * r.Customers : 0)   // (n−1)·s², s = SE·√n
                                    + r.Customers * (r.Difference - mean) * (r.Difference - mean));
        return new Row(rows[0].Method, n, Weighted(r => r.Map12), Weighted(r => r.BaselineMap12), mean, Math.Sqrt(squares / (n - 1) / n));
    }

    /// <summary>Each method's MAP@12 in one per_customer_ap12.csv (no baseline: NaN in its columns).</summary>
    public static IReadOnlyList<Row> Map12(string csv)
    {
        var (methods, ap) = Read(csv);
        return methods.Select((method, m) => new Row(method, ap.Count, ap.Values.Average(v => v[m]), double.NaN, double.NaN, double.NaN)).ToList();
    }

    /// <summary>The comparison as a markdown table, the difference with its paired standard error.</summary>
    public static string Table(IReadOnlyList<Row> rows) =>
        "| method | MAP@12 | baseline MAP@12 | difference ± paired SE |\n|---|---|---|---|\n" +
        string.Concat(rows.Select(r => FormattableString.Invariant(
            $"| {r.Method} | {r.Map12:F4} | {r.BaselineMap12:F4} | {r.Difference:+0.0000;-0.0000;0.0000} ± {r.StandardError:F4} |\n")));

    static (string[] Methods, Dictionary<string, double[]> Ap) Read(string path) => CsvFile.Read(path, reader => Read(path, reader));

    static (string[] Methods, Dictionary<string, double[]> Ap) Read(string path, SepReader reader)
    {
        var names = reader.Header.ColNames;
        if (names.Count < 2 || names[0] != "customer_id")
            throw new PipelineError($"{path}: expected Evaluate's {PerCustomerEvaluation.CustomerApFile}, a customer_id column and a column per method. " +
                                    CsvFile.ColumnsFound(reader.Header));
        var methods = names.Skip(1).ToArray();
        var ap = new Dictionary<string, double[]>();
        foreach (var row in reader)
        {
            var customer = row[0].ToString();
            var values = new double[methods.Length];
            for (var m = 0; m < methods.Length; m++)
                if (!double.TryParse(row[m + 1].Span, NumberStyles.Float, CultureInfo.InvariantCulture, out values[m]) || !(values[m] is >= 0 and <= 1))
                    throw new PipelineError($"{path}:{row.LineNumberFrom}: column '{methods[m]}' (column {m + 2}): " +
                                            $"'{PipelineError.Excerpt(row[m + 1].Span)}' is not an AP@12 (a number from 0 to 1)");
            if (!ap.TryAdd(customer, values))
                throw new PipelineError($"{path}:{row.LineNumberFrom}: customer '{PipelineError.Excerpt(customer)}' appears twice");
        }
        if (ap.Count == 0)
            throw new PipelineError($"{path}: no customers (Evaluate had no validation customer seen in training)");
        return (methods, ap);
    }
}
