using System.Globalization;
using nietras.SeparatedValues;

namespace TwoTower.Data;

/// <summary>
/// Reads a notebook-layout CSV (train_df.csv / val_df.csv) into columns with Sep, streaming.
/// Categorical columns become codes into their <see cref="Levels"/> (the strings are kept verbatim:
/// ids are opaque, leading zeros survive); numeric columns are parsed as float, an empty cell
/// becoming NaN or an error by policy.
/// </summary>
public static class CsvTransactions
{
    /// <summary>Codes (int) of the categorical columns and values (float) of the numeric ones, with the categorical levels.</summary>
    /// <param name="InvalidTextRows">Per categorical column, the rows whose value held bytes that are not UTF-8 (read as U+FFFD).</param>
    public sealed record Result(ColumnTable Table, IReadOnlyDictionary<string, IReadOnlyList<string>> Levels,
        IReadOnlyDictionary<string, int> MissingCounts, IReadOnlyDictionary<string, int> InvalidTextRows);

    public static Result Read(string path, IReadOnlyList<string> categorical, IReadOnlyList<string> numeric, bool missingIsError) =>
        CsvFile.Read(path, reader => Read(path, reader, categorical, numeric, missingIsError));

    static Result Read(string path, SepReader reader, IReadOnlyList<string> categorical, IReadOnlyList<string> numeric, bool missingIsError)
    {
        var header = reader.Header;

        int IndexOf(string column) =>
            header.TryIndexOf(column, out var i) ? i
            : throw new PipelineError($"{path}: missing column '{column}'. {CsvFile.ColumnsFound(header)}");

        var dateIdx = header.TryIndexOf("t_dat", out var iDate) ? iDate : -1;
        var days = new List<int>(dateIdx < 0 ? 0 : 1 << 16);
        var dates = new PurchaseDates(path);
        var catIdx = categorical.Select(IndexOf).ToArray();
        var numIdx = numeric.Select(IndexOf).ToArray();
        var levels = categorical.Select(_ => new Levels()).ToArray();
        var cats = categorical.Select(_ => new List<int>(1 << 16)).ToArray();
        var nums = numeric.Select(_ => new List<float>(1 << 16)).ToArray();
        var missing = new int[numeric.Count];

        foreach (var row in reader)
        {
            if (dateIdx >= 0)
                days.Add(dates.Parse(row[dateIdx].Span, row.LineNumberFrom).DayNumber);
            for (var c = 0; c < catIdx.Length; c++)
                cats[c].Add(levels[c].Code(row[catIdx[c]].Span));
            for (var c = 0; c < numIdx.Length; c++)
            {
                var span = row[numIdx[c]].Span.Trim();
                float value;
                if (span.IsEmpty)
                {
                    if (missingIsError)
                        throw new PipelineError(
                            $"{path}:{row.LineNumberFrom}: column '{numeric[c]}' (column {numIdx[c] + 1}) is empty " +
                            "(data.missing_numeric is 'error'; 'impute_mean' fills it with the training mean)");
                    missing[c]++;
                    value = float.NaN;
                }
                else if (!float.TryParse(span, NumberStyles.Float, CultureInfo.InvariantCulture, out value) || !float.IsFinite(value))
                {
                    throw new PipelineError(
                        $"{path}:{row.LineNumberFrom}: column '{numeric[c]}' (column {numIdx[c] + 1}): '{PipelineError.Excerpt(span)}' is not a number");
                }
                nums[c].Add(value);
            }
        }

        var rows = cats.Length > 0 ? cats[0].Count : nums.Length > 0 ? nums[0].Count : 0;
        if (rows == 0)
            throw new PipelineError($"{path}: the file has a header but no data rows");
        var table = new ColumnTable();
        for (var c = 0; c < categorical.Count; c++)
            table.Add(categorical[c], cats[c].ToArray());
        for (var c = 0; c < numeric.Count; c++)
            table.Add(numeric[c], nums[c].ToArray());
        if (dateIdx >= 0)
            table.Add(DataFiles.DayColumn, days.ToArray());
        return new Result(table,
            categorical.Select((n, i) => (n, levels[i].Values)).ToDictionary(x => x.n, x => x.Values),
            numeric.Select((n, i) => (n, missing[i])).ToDictionary(x => x.n, x => x.Item2),
            categorical.Select((n, i) => (n, InvalidTextRows(levels[i].Values, cats[i]))).ToDictionary(x => x.n, x => x.Item2));
    }

    /// <summary>Rows whose value contains U+FFFD, the decoder's stand-in for bytes that are not UTF-8 (a Latin-1 file, say): checked once per distinct value.</summary>
    static int InvalidTextRows(IReadOnlyList<string> values, List<int> codes)
    {
        var invalid = values.Select(v => v.Contains('\uFFFD')).ToArray();
        return invalid.Any(x => x) ? codes.Count(c => invalid[c]) : 0;
    }
}
