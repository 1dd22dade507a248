using System.Globalization;
using TwoTower.Config;
using TwoTower.Pipeline;
using nietras.SeparatedValues;

namespace TwoTower.Data;

/// <summary>
/// The feature pipeline in front of the notebook (data.format: hm_raw): H&amp;M's three raw files
/// (transactions_train.csv, customers.csv, articles.csv), or any data in their layout, joined into
/// the notebook's rows. Transactions are streamed; customers and articles are held as columns
/// keyed by id. Every categorical value becomes a code as it is read.
/// Derived columns: month (1..12 of t_dat), month_sin = sin(2πm/12), month_cos = cos(2πm/12).
/// Any other column of the three files can be named as a feature.
/// </summary>
public static partial class RawHm
{
    public sealed record Split(ColumnTable Table, IReadOnlyDictionary<string, IReadOnlyList<string>> Levels);

    /// <summary>A side table (customers or articles): its requested columns by row, and its id → row index.</summary>
    sealed class SideTable
    {
        public readonly Dictionary<string, int> RowOfId = new(StringComparer.Ordinal);
        public readonly Dictionary<string, List<int>> Codes = new();
        public readonly Dictionary<string, Levels> Levels = new();
        public readonly Dictionary<string, List<float>> Numbers = new();
    }

    /// <summary>Reads, joins, splits and samples; returns the train and validation rows with the requested columns.</summary>
    public static (Split Train, Split Val) Read(PipelineConfig config, FeatureSet features, IPipelineLog log)
    {
        var sources = ResolveSources(config, features);
        var padding = (int)config.Get(ConfigSchema.Raw.ArticleIdDigits);
        var customers = ReadSide(DataFiles.Customers(config), "customer_id", id => id.ToString(),
            features.CategoricalColumns.Where(c => sources[c] == "customers" && c != "customer_id").ToArray(),
            features.NumericColumns.Where(c => sources[c] == "customers").ToArray(), log);
        var articles = ReadSide(DataFiles.Articles(config), "article_id", id => NormalizeArticle(id, padding, new char[Math.Max(padding, id.Length)]).ToString(),
            features.CategoricalColumns.Where(c => sources[c] == "articles" && c != "article_id").ToArray(),
            features.NumericColumns.Where(c => sources[c] == "articles").ToArray(), log);

        var join = new TransactionJoin(config, features, sources, customers, articles, SampleCustomers(config, customers, log));
        join.Read(DataFiles.Transactions(config));
        join.Report(log);

        var part = SplitDays(config, join.Days, log);
        if (config.Get(ConfigSchema.Raw.DedupePairs) && features.CategoricalColumns.Contains("customer_id") && features.CategoricalColumns.Contains("article_id"))
            DropRepeatedPairs(part, join.Rows.Cats["customer_id"], join.Rows.Cats["article_id"], log);
        var levels = new Dictionary<string, IReadOnlyList<string>>(join.Rows.Levels.ToDictionary(kv => kv.Key, kv => kv.Value.Values))
        {
            ["customer_id"] = join.CustomerLevels.Values,
            ["article_id"] = join.ArticleLevels.Values,
        };
        var (train, validation) = join.Rows.SplitParts(part, levels, join.Days);
        log.Info($"Split: {train.Table.RowCount:N0} training, {validation.Table.RowCount:N0} validation, {part.Count(p => p == 2):N0} test rows held out");
        if (train.Table.RowCount == 0 || validation.Table.RowCount == 0)
            throw new PipelineError("the split leaves no training or no validation rows (see raw.split, raw.validation_days, raw.validation_offset_days, raw.validation_fraction)");
        return (train, validation);
    }

    static readonly string[] DerivedColumns = ["month", "month_sin", "month_cos"];

    /// <summary>Which file each feature column comes from ("transactions", "customers" or "articles"); an error names every file's columns.</summary>
    static Dictionary<string, string> ResolveSources(PipelineConfig config, FeatureSet features)
    {
        var transactionsPath = DataFiles.Transactions(config);
        var transactionColumns = HeaderOf(transactionsPath);
        foreach (var required in new[] { "t_dat", "customer_id", "article_id" })
        {
            if (!transactionColumns.Contains(required))
                throw new PipelineError($"{transactionsPath}: missing column '{required}'. Columns found: {PipelineError.Excerpt(string.Join(", ", transactionColumns))}");
        }
        var customersPath = DataFiles.Customers(config);
        var articlesPath = DataFiles.Articles(config);
        var customerColumns = HeaderOf(customersPath);
        var articleColumns = HeaderOf(articlesPath);
        string SourceOf(string column) =>
            transactionColumns.Contains(column) || DerivedColumns.Contains(column) ? "transactions"
            : customerColumns.Contains(column) ? "customers"
            : articleColumns.Contains(column) ? "articles"
            : throw new PipelineError($"feature column '{column}' is in none of the raw files: {transactionsPath} has " +
                                      $"{string.Join(", ", transactionColumns)} (and the derived {string.Join(", ", DerivedColumns)}); " +
                                      $"{customersPath} has {string.Join(", ", customerColumns)}; {articlesPath} has {string.Join(", ", articleColumns)}");
        return features.CategoricalColumns.Concat(features.NumericColumns).ToDictionary(c => c, SourceOf);
    }

    /// <summary>
    /// raw.sample_customers customers drawn with raw.sample_seed (the reference sampled 25,000), marked
    /// by customer row so a transaction's customer is looked up once; null keeps everyone.
    /// </summary>
    static bool[]? SampleCustomers(PipelineConfig config, SideTable customers, IPipelineLog log)
    {
        var sample = (int)config.Get(ConfigSchema.Raw.SampleCustomers);
        if (sample == 0)
            return null;
        var ids = customers.RowOfId.Keys.Order(StringComparer.Ordinal).ToArray();
        var rng = new Rng((ulong)config.Get(ConfigSchema.Raw.SampleSeed));
        rng.Shuffle(ids.AsSpan());
        var sampled = new bool[customers.RowOfId.Count];
        foreach (var id in ids.Take(sample))
            sampled[customers.RowOfId[id]] = true;
        log.Info($"Sampling {Math.Min(sample, ids.Length):N0} of {ids.Length:N0} customers (raw.sample_customers)");
        return sampled;
    }

    /// <summary>
    /// Each row's part, 0 train, 1 validation, 2 test (held out): the last raw.validation_days days
    /// (H&amp;M's weekly test), ending raw.validation_offset_days before the last day for a backtest
    /// (the days after it held out), or a seeded random 80/10/10 as the reference did.
    /// </summary>
    static byte[] SplitDays(PipelineConfig config, List<int> days, IPipelineLog log)
    {
        var part = new byte[days.Count];
        if (config.Get(ConfigSchema.Raw.Split) == "time")
        {
            var offset = (int)config.Get(ConfigSchema.Raw.ValidationOffsetDays);
            var lastValidationDay = days.Max() - offset;
            var firstValidationDay = lastValidationDay - (int)config.Get(ConfigSchema.Raw.ValidationDays) + 1;
            for (var r = 0; r < part.Length; r++)
                part[r] = days[r] > lastValidationDay ? (byte)2 : days[r] >= firstValidationDay ? (byte)1 : (byte)0;
            log.Info($"Time split: validation from {DateOnly.FromDayNumber(firstValidationDay):yyyy-MM-dd} to {DateOnly.FromDayNumber(lastValidationDay):yyyy-MM-dd}" +
                     (offset > 0 ? $"; the {offset} days after it are held out (raw.validation_offset_days)" : ""));
            return part;
        }
        var rng = new Rng((ulong)config.Get(ConfigSchema.Raw.SplitSeed));
        var val = config.Get(ConfigSchema.Raw.ValidationFraction);
        var test = config.Get(ConfigSchema.Raw.TestFraction);
        for (var r = 0; r < part.Length; r++)
        {
            var u = rng.NextDouble();
            part[r] = u < 1 - val - test ? (byte)0 : u < 1 - test ? (byte)1 : (byte)2;
        }
        return part;
    }

    enum Source { CustomerId, ArticleId, Customers, Articles, Month, MonthSin, MonthCos, Transactions }

    static readonly string[] MonthNames = Enumerable.Range(0, 13).Select(m => m.ToString(CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Where one requested column's value comes from, decided once for the whole file.</summary>
    sealed class ColumnPlan
    {
        public readonly string Column;
        public readonly Source Kind;
        public readonly int Index = -1;
        readonly SideTable? side;

        // Where this column's values go and come from, bound once so the row loop does no name lookups.
        public List<int>? Codes;
        public Levels? RowLevels;
        public List<float>? Numbers;
        public List<float>? SideNumbers;
        readonly int[] memo = [];

        public ColumnPlan(string column, string source, SepReaderHeader header, SideTable customers, SideTable articles)
        {
            Column = column;
            Kind = (column, source) switch
            {
                ("customer_id", _) => Source.CustomerId,
                ("article_id", _) => Source.ArticleId,
                ("month", "transactions") => Source.Month,
                ("month_sin", "transactions") => Source.MonthSin,
                ("month_cos", "transactions") => Source.MonthCos,
                (_, "customers") => Source.Customers,
                (_, "articles") => Source.Articles,
                _ => Source.Transactions,
            };
            if (Kind == Source.Transactions)
                Index = header.IndexOf(column);
            side = Kind switch { Source.Customers => customers, Source.Articles => articles, _ => null };
            if (side != null && side.Codes.ContainsKey(column))
            {
                memo = new int[side.RowOfId.Count];
                Array.Fill(memo, -1);
            }
        }

        /// <summary>The joined row's code in levels (a missing side row is the empty value).</summary>
        public int SideCode(int sideRow, Levels levels)
        {
            if (sideRow < 0)
                return levels.Code("");
            ref var code = ref memo[sideRow];
            if (code < 0)
                code = levels.Code(side!.Levels[Column].Values[side.Codes[Column][sideRow]]);
            return code;
        }
    }

    static int[] NewMemo(int length)
    {
        var memo = new int[length];
        Array.Fill(memo, -1);
        return memo;
    }

    static int CodeOfRow(int[] memo, int row, Levels levels, ReadOnlySpan<char> id)
    {
        ref var code = ref memo[row];
        if (code < 0)
            code = levels.Code(id);
        return code;
    }

    /// <summary>An all-digit id shorter than `digits` zero-padded into buffer; anything else as written.</summary>
    static ReadOnlySpan<char> NormalizeArticle(ReadOnlySpan<char> id, int digits, Span<char> buffer)
    {
        if (digits <= 0 || id.Length >= digits || !IsDigits(id) || digits > buffer.Length)
            return id;
        var pad = digits - id.Length;
        buffer[..pad].Fill('0');
        id.CopyTo(buffer[pad..]);
        return buffer[..digits];
    }

    /// <summary>Rows in a CSV estimated from its first megabyte, so that the columns are allocated once.</summary>
    static int EstimateRows(string path)
    {
        using var stream = File.OpenRead(path);
        var sample = new byte[1 << 20];
        var read = stream.ReadAtLeast(sample, sample.Length, throwOnEndOfStream: false);
        var lines = Math.Max(1, sample.AsSpan(0, read).Count((byte)'\n'));
        return (int)Math.Min(int.MaxValue / 2, stream.Length / ((double)read / lines) * 1.02 + 16);
    }

    /// <summary>Keeps the first row of each (customer, article) pair within each part; counts what it drops.</summary>
    static void DropRepeatedPairs(byte[] part, List<int> customers, List<int> articles, IPipelineLog log)
    {
        var seen = new HashSet<(byte, int, int)>();
        var dropped = 0;
        for (var r = 0; r < part.Length; r++)
        {
            if (part[r] != 255 && !seen.Add((part[r], customers[r], articles[r])))
            {
                part[r] = 255;
                dropped++;
            }
        }
        log.Info($"raw.dedupe_pairs: {dropped:N0} repeated (customer, article) rows dropped");
    }

    /// <summary>The joined rows as codes and numbers, before the split.</summary>
    sealed class RowColumns(IReadOnlyList<string> categorical, IReadOnlyList<string> numeric, int capacity)
    {
        public readonly Dictionary<string, List<int>> Cats = categorical.ToDictionary(c => c, _ => new List<int>(capacity));
        public readonly Dictionary<string, List<float>> Nums = numeric.ToDictionary(c => c, _ => new List<float>(capacity));
        public readonly Dictionary<string, Levels> Levels = categorical.Where(c => c is not ("customer_id" or "article_id")).ToDictionary(c => c, _ => new Levels());

        /// <summary>
        /// The training (part 0) and validation (part 1) rows, each categorical column re-coded in
        /// first-seen order of that part's rows. Columns are moved out one at a time, so the joined
        /// rows and the splits are never all in memory together.
        /// </summary>
        public (Split Train, Split Val) SplitParts(byte[] part, IReadOnlyDictionary<string, IReadOnlyList<string>> allLevels, List<int> days)
        {
            var counts = new int[2];
            foreach (var p in part)
            {
                if (p < 2)
                    counts[p]++;
            }
            var tables = new[] { new ColumnTable(), new ColumnTable() };
            var levels = new[] { new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>() };
            foreach (var column in Cats.Keys.ToArray())
            {
                var codes = Cats[column];
                Cats.Remove(column);
                var outputs = new[] { new int[counts[0]], new int[counts[1]] };
                var recode = new[] { new Dictionary<int, int>(), new Dictionary<int, int>() };
                var values = new[] { new List<string>(), new List<string>() };
                var at = new int[2];
                for (var r = 0; r < part.Length; r++)
                {
                    var p = part[r];
                    if (p >= 2)
                        continue;
                    var code = codes[r];
                    if (!recode[p].TryGetValue(code, out var local))
                    {
                        recode[p][code] = local = values[p].Count;
                        values[p].Add(allLevels[column][code]);
                    }
                    outputs[p][at[p]++] = local;
                }
                for (var p = 0; p < 2; p++)
                {
                    tables[p].Add(column, outputs[p]);
                    levels[p][column] = values[p];
                }
            }
            foreach (var column in Nums.Keys.ToArray())
            {
                var numbers = Nums[column];
                Nums.Remove(column);
                var outputs = new[] { new float[counts[0]], new float[counts[1]] };
                var at = new int[2];
                for (var r = 0; r < part.Length; r++)
                {
                    if (part[r] < 2)
                        outputs[part[r]][at[part[r]]++] = numbers[r];
                }
                for (var p = 0; p < 2; p++)
                    tables[p].Add(column, outputs[p]);
            }
            var dayOutputs = new[] { new int[counts[0]], new int[counts[1]] };
            var dayAt = new int[2];
            for (var r = 0; r < part.Length; r++)
            {
                if (part[r] < 2)
                    dayOutputs[part[r]][dayAt[part[r]]++] = days[r];
            }
            for (var p = 0; p < 2; p++)
                tables[p].Add(DataFiles.DayColumn, dayOutputs[p]);
            return (new Split(tables[0], levels[0]), new Split(tables[1], levels[1]));
        }
    }

    /// <summary>
    /// The ids of a file's id column in file order (an id repeated later is kept once), each as the
    /// pipeline spells it (articles zero-padded by raw.article_id_digits) and as the file writes it.
    /// What RecommendAll covers (customers.csv) and writes (articles.csv's spelling).
    /// </summary>
    public static List<(string Id, string Written)> ReadIds(string path, string idColumn, int articleIdDigits = 0) =>
        CsvFile.Read(path, reader => ReadIds(path, reader, idColumn, articleIdDigits));

    static List<(string Id, string Written)> ReadIds(string path, SepReader reader, string idColumn, int articleIdDigits)
    {
        if (!reader.Header.TryIndexOf(idColumn, out var column))
            throw new PipelineError($"{path}: missing column '{idColumn}'. {CsvFile.ColumnsFound(reader.Header)}");
        var ids = new List<(string, string)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in reader)
        {
            var written = row[column].Span.Trim();
            if (written.IsEmpty)
                throw new PipelineError($"{path}:{row.LineNumberFrom}: column '{idColumn}' is empty; every row needs an id");
            var id = articleIdDigits > 0 ? NormalizeArticle(written, articleIdDigits, new char[Math.Max(articleIdDigits, written.Length)]).ToString() : written.ToString();
            if (seen.Add(id))
                ids.Add((id, written.ToString()));
        }
        return ids;
    }

    static SideTable ReadSide(string path, string idColumn, Func<ReadOnlySpan<char>, string> normalizeId,
        IReadOnlyList<string> categorical, IReadOnlyList<string> numeric, IPipelineLog log) =>
        CsvFile.Read(path, reader => ReadSide(path, reader, idColumn, normalizeId, categorical, numeric, log));

    static SideTable ReadSide(string path, SepReader reader, string idColumn, Func<ReadOnlySpan<char>, string> normalizeId,
        IReadOnlyList<string> categorical, IReadOnlyList<string> numeric, IPipelineLog log)
    {
        var side = new SideTable();
        var header = reader.Header;
        int IndexOf(string column) => header.TryIndexOf(column, out var i) ? i
            : throw new PipelineError($"{path}: missing column '{column}'. {CsvFile.ColumnsFound(header)}");
        var iId = IndexOf(idColumn);
        var cats = categorical.Select(c => (c, IndexOf(c))).ToArray();
        var nums = numeric.Select(c => (c, IndexOf(c))).ToArray();
        foreach (var (c, _) in cats)
        {
            side.Codes[c] = [];
            side.Levels[c] = new Levels();
        }
        foreach (var (c, _) in nums)
            side.Numbers[c] = [];
        var duplicates = 0;
        foreach (var row in reader)
        {
            if (!side.RowOfId.TryAdd(normalizeId(row[iId].Span), side.RowOfId.Count))
            {
                duplicates++;
                continue;
            }
            foreach (var (c, i) in cats)
                side.Codes[c].Add(side.Levels[c].Code(row[i].Span));
            foreach (var (c, i) in nums)
            {
                var span = row[i].Span.Trim();
                side.Numbers[c].Add(span.IsEmpty ? float.NaN : ParseNumber(span, path, row.LineNumberFrom, c));
            }
        }
        if (duplicates > 0)
            log.Warning($"{path}: {duplicates:N0} rows repeat an earlier {idColumn}; the first is used");
        return side;
    }

    static float ParseNumber(ReadOnlySpan<char> text, string path, int line, string column)
    {
        text = text.Trim();
        if (text.IsEmpty)
            return float.NaN;
        if (float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && float.IsFinite(value))
            return value;
        throw new PipelineError($"{path}:{line}: column '{column}': '{PipelineError.Excerpt(text)}' is not a number");
    }

    static bool IsDigits(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (c is < '0' or > '9')
                return false;
        }
        return !s.IsEmpty;
    }

    static string[] HeaderOf(string path) => CsvFile.Read(path, reader => reader.Header.ColNames.ToArray());
}
