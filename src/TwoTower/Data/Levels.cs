namespace TwoTower.Data;

/// <summary>
/// The distinct values of a categorical column in first-seen order, each with its code
/// (0, 1, …). Cells are looked up as spans, so reading a 31.8M-row file allocates one string per
/// distinct value, not per row: ids become integers as early as possible.
/// </summary>
public sealed class Levels
{
    readonly Dictionary<string, int> codes = new(StringComparer.Ordinal);
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup;
    readonly List<string> values = [];

    /// <summary>The file holding a split's levels of a column (artifacts/ingest): its values as a JSON array.</summary>
    public static string FileName(string split, string column) => $"levels.{split}.{column}.json";

    public Levels() => lookup = codes.GetAlternateLookup<ReadOnlySpan<char>>();

    public IReadOnlyList<string> Values => values;

    public int Code(ReadOnlySpan<char> value)
    {
        if (lookup.TryGetValue(value, out var code))
            return code;
        var text = value.ToString();
        code = values.Count;
        codes.Add(text, code);
        values.Add(text);
        return code;
    }
}
