using nietras.SeparatedValues;

namespace TwoTower.Data;

/// <summary>Opening a CSV with Sep, with the user's mistakes (no file, an empty file, no header, a column named twice) said in their words.</summary>
public static class CsvFile
{
    static SepReader Open(string path)
    {
        if (Directory.Exists(path))
            throw new PipelineError($"'{path}' is a folder; expected a CSV file there (see data.* in the config)");
        if (!File.Exists(path))
            throw new PipelineError($"data file not found: {path}");
        if (new FileInfo(path).Length == 0)
            throw new PipelineError($"{path}: the file is empty (expected a header line and data rows)");
        SepReader reader;
        try
        {
            reader = Sep.Reader(o => o with { Unescape = true }).FromFile(path);
        }
        catch (ArgumentException)
        {
            throw DuplicateColumn(path);
        }
        if (reader.Header.IsEmpty || reader.Header.ColNames.All(string.IsNullOrWhiteSpace))
        {
            reader.Dispose();
            throw new PipelineError($"{path}: the file has no header line");
        }
        return reader;
    }

    /// <summary>
    /// Opens the file and reads it with <paramref name="read"/>; a row Sep cannot split as the header
    /// says (a wrong number of columns, an unclosed quote) is a malformed-CSV error naming the file.
    /// </summary>
    public static T Read<T>(string path, Func<SepReader, T> read)
    {
        try
        {
            using var reader = Open(path);
            return read(reader);
        }
        catch (InvalidDataException e)
        {
            throw new PipelineError($"{path}: malformed CSV: {PipelineError.Excerpt(e.Message)}");
        }
    }

    public static void Read(string path, Action<SepReader> read) =>
        Read(path, reader => { read(reader); return 0; });

    /// <summary>
    /// One field as every CSV this project writes spells it (RFC 4180, as Sep reads it back): as is, or
    /// in double quotes with its quotes doubled when it holds a comma, a quote or a line break.
    /// </summary>
    public static string Field(string value) =>
        value.AsSpan().IndexOfAny(",\"\n\r") < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";

    /// <summary>"Columns found: a, b, …", cut to a bounded length (a 10 MB one-line file is one huge header).</summary>
    public static string ColumnsFound(SepReaderHeader header) => "Columns found: " + PipelineError.Excerpt(string.Join(", ", header.ColNames));

    /// <summary>Sep refuses a header that names a column twice: find the pair and name both positions.</summary>
    static PipelineError DuplicateColumn(string path)
    {
        using var text = new StreamReader(path);
        var names = (text.ReadLine() ?? "").Split(',').Select(n => n.Trim().Trim('"')).ToArray();
        var twice = names.Select((n, i) => (n, i)).GroupBy(x => x.n).FirstOrDefault(g => g.Count() > 1);
        if (twice is null)
            return new PipelineError($"{path}: the header line cannot be read as CSV column names");
        var columns = twice.Select(x => (x.i + 1).ToString()).ToArray();
        var where = $"columns {string.Join(", ", columns[..^1])} and {columns[^1]}";
        return string.IsNullOrWhiteSpace(twice.Key)
            ? new PipelineError($"{path}: the header has columns without a name ({where}); each column needs its own name")
            : new PipelineError($"{path}: the header names column '{PipelineError.Excerpt(twice.Key)}' " +
                                $"{(columns.Length == 2 ? "twice" : $"{columns.Length} times")} ({where}); each column needs its own name");
    }
}
