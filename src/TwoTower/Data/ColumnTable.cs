using Parquet;
using Parquet.Schema;

namespace TwoTower.Data;

/// <summary>
/// Named columns of equal length: int[] (categorical codes or ids), float[] (numbers) or string[]
/// (values for people and other tools, as in the package's candidates.parquet). What the stages
/// pass between each other, stored as Parquet.
/// </summary>
public sealed class ColumnTable
{
    readonly List<(string Name, Array Values)> columns = [];

    public int RowCount { get; private set; } = -1;

    public IEnumerable<string> Names => columns.Select(c => c.Name);

    public ColumnTable Add(string name, Array values)
    {
        if (values is not (int[] or float[] or string[]))
            throw new ArgumentException($"unsupported column type {values.GetType()}");
        if (RowCount >= 0 && values.Length != RowCount)
            throw new ArgumentException($"column '{name}' has {values.Length} rows, the table {RowCount}");
        if (columns.Any(c => c.Name == name))
            throw new ArgumentException($"column '{name}' is already present");
        RowCount = values.Length;
        columns.Add((name, values));
        return this;
    }

    public Array Column(string name) =>
        columns.FirstOrDefault(c => c.Name == name).Values ?? throw new KeyNotFoundException($"no column '{name}'");

    /// <summary>A table of the given rows of this one, in that order.</summary>
    public ColumnTable SelectRows(int[] rows)
    {
        var table = new ColumnTable();
        foreach (var (name, values) in columns)
            table.Add(name, values switch
            {
                int[] v => rows.Select(r => v[r]).ToArray(),
                float[] v => rows.Select(r => v[r]).ToArray(),
                string[] v => (Array)rows.Select(r => v[r]).ToArray(),
                _ => throw new InvalidOperationException($"unsupported column type {values.GetType()}"),
            });
        return table;
    }

    public int[] Ints(string name) => (int[])Column(name);
    public float[] Floats(string name) => (float[])Column(name);
    public string[] Strings(string name) => (string[])Column(name);

    const int RowGroupSize = 1 << 20;

    public void WriteParquet(string path) => WriteParquet(path, [this]);

    /// <summary>
    /// Writes tables with the same columns one after another into one Parquet file, as they come
    /// (bounded memory for a lazy sequence: RecommendAll's blocks), under a temporary name renamed
    /// once the last is written.
    /// </summary>
    public static void WriteParquet(string path, IEnumerable<ColumnTable> parts) =>
        Pipeline.ArtifactStore.WriteAtomic(path, stream => WriteParquetAsync(stream, parts).GetAwaiter().GetResult());

    static async Task WriteParquetAsync(Stream stream, IEnumerable<ColumnTable> parts)
    {
        ParquetWriter? writer = null;
        DataField[] fields = [];
        ColumnTable? first = null;
        var rowsWritten = 0L;
        try
        {
            foreach (var table in parts)
            {
                if (writer == null)
                {
                    first = table;
                    fields = table.columns.Select(c => c.Values switch
                    {
                        int[] => (DataField)new DataField<int>(c.Name),
                        float[] => new DataField<float>(c.Name),
                        _ => new DataField<string>(c.Name),
                    }).ToArray();
                    writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), stream);
                }
                else if (!table.Names.SequenceEqual(fields.Select(f => f.Name)))
                    throw new ArgumentException($"a part's columns ({string.Join(", ", table.Names)}) differ from the first's");
                for (var start = 0; start < table.RowCount; start += RowGroupSize)
                    await table.WriteRowGroupAsync(writer, fields, start, Math.Min(RowGroupSize, table.RowCount - start));
                rowsWritten += Math.Max(table.RowCount, 0);
            }
            if (writer == null)
                throw new ArgumentException("no table to write");
            // A file of no rows still holds one (empty) row group, as readers expect.
            if (rowsWritten == 0)
                await first!.WriteRowGroupAsync(writer, fields, 0, 0);
        }
        finally
        {
            if (writer != null)
                await writer.DisposeAsync();
        }
    }

    async Task WriteRowGroupAsync(ParquetWriter writer, DataField[] fields, int start, int count)
    {
        using var group = writer.CreateRowGroup();
        for (var i = 0; i < columns.Count; i++)
        {
            switch (columns[i].Values)
            {
                case int[] v:
                    await group.WriteAsync<int>(fields[i], v.AsMemory(start, count));
                    break;
                case string[] text:
                    await group.WriteAsync(fields[i], new ArraySegment<string>(text, start, count));
                    break;
                case float[] f:
                    await group.WriteAsync<float>(fields[i], f.AsMemory(start, count));
                    break;
            }
        }
    }

    /// <summary>Reads the named columns (all when none are named) of a Parquet file.</summary>
    public static ColumnTable ReadParquet(string path, IEnumerable<string>? names = null) =>
        ReadParquetAsync(path, names?.ToArray()).GetAwaiter().GetResult();

    static async Task<ColumnTable> ReadParquetAsync(string path, string[]? names)
    {
        await using var reader = await ParquetReader.CreateAsync(path);
        var fields = reader.Schema.GetDataFields();
        var wanted = names is null ? fields : names.Select(n =>
            fields.FirstOrDefault(f => f.Name == n) ?? throw new PipelineError($"{path}: no column '{n}'")).ToArray();
        var total = 0L;
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            total += group.RowCount;
        }
        var table = new ColumnTable();
        foreach (var field in wanted)
        {
            Array values = field.ClrType == typeof(int) ? new int[total]
                : field.ClrType == typeof(float) ? new float[total] : new string[total];
            var offset = 0;
            for (var g = 0; g < reader.RowGroupCount; g++)
            {
                using var group = reader.OpenRowGroupReader(g);
                var n = (int)group.RowCount;
                switch (values)
                {
                    case int[] v:
                        await group.ReadAsync<int>(field, v.AsMemory(offset, n));
                        break;
                    case string[] text:
                        await group.ReadAsync(field, text.AsMemory(offset, n)!);
                        break;
                    case float[] f:
                        await group.ReadAsync<float>(field, f.AsMemory(offset, n));
                        break;
                }
                offset += n;
            }
            table.Add(field.Name, values);
        }
        if (table.RowCount < 0)
            table.RowCount = (int)total;
        return table;
    }
}
