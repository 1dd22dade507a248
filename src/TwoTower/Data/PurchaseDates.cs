using System.Globalization;

namespace TwoTower.Data;

/// <summary>
/// The t_dat column of one file (YYYY-MM-DD), read as dates: each distinct date is parsed once (a
/// file of millions of rows holds a few hundred dates); a cell that is not a date is an error
/// naming the file, the line and the cell.
/// </summary>
public sealed class PurchaseDates(string path)
{
    readonly Dictionary<string, DateOnly>.AlternateLookup<ReadOnlySpan<char>> cache =
        new Dictionary<string, DateOnly>(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();

    public DateOnly Parse(ReadOnlySpan<char> text, int line)
    {
        if (cache.TryGetValue(text, out var date))
            return date;
        if (!DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out date))
            throw new PipelineError($"{path}:{line}: column 't_dat': '{PipelineError.Excerpt(text)}' is not a date (expected YYYY-MM-DD)");
        cache[text] = date;
        return date;
    }
}
