using System.Globalization;
using System.IO.Hashing;
using System.Text;
using TwoTower.Config;
using TwoTower.Pipeline;

namespace TwoTower.Data;

/// <summary>
/// Writes H&amp;M-shaped train_df.csv / val_df.csv with structure a retrieval model can learn and a
/// popularity list cannot fully capture. The generating process (README, "Built-in data"):
/// <list type="number">
/// <item>24 taste clusters, each with a preferred customer age, 3 favourite garment groups and a main
/// index group. Every article belongs to one cluster; its garment and index group follow the
/// cluster's preferences (70% / 80%), its popularity is Zipf-distributed (long tail), and 30% of
/// articles are seasonal with a peak month.</item>
/// <item>Customers: age from a two-peak mixture (27±5, 50±9); a primary taste cluster drawn by age
/// (clusters whose preferred age is near theirs), a secondary one at random; a log-normal
/// activity level. 4% of customers only appear in the validation period (out of vocabulary).</item>
/// <item>Transactions in time order over two years (train) then the following ~11 weeks (validation):
/// a customer drawn by activity; with 15% probability a repeat of one of their last 8 articles;
/// otherwise an article of their primary (65%), secondary (20%) or a random cluster, drawn by
/// popularity times the seasonal factor of the purchase month. 2% of articles launch only in the
/// validation period.</item>
/// </list>
/// Rows are streamed to disk, so the full H&amp;M scale (synth.scale = 77.56: 31.8M rows,
/// 1.37M customers, 105k articles) needs memory only for the customers' and articles' state.
/// </summary>
public static class Synthesizer
{
    const string CodeVersion = "synth-2";

    public static readonly string[] GarmentGroups =
    [
        "Jersey Basic", "Under-, Nightwear", "Socks and Tights", "Jersey Fancy", "Accessories", "Trousers Denim",
        "Outdoor", "Shoes", "Swimwear", "Knitwear", "Shirts", "Trousers", "Dressed", "Shorts", "Dresses Ladies",
        "Skirts", "Special Offer", "Blouses", "Unknown", "Woven/Jersey/Knitted mix Baby", "Dresses/Skirts girls",
    ];

    public static readonly string[] IndexGroups = ["Ladieswear", "Baby/Children", "Menswear", "Sport", "Divided"];

    const int Clusters = 24;
    const double FullScale = 77.56;

    public static (int Transactions, int Customers, int Articles) Sizes(double scale)
    {
        // Each count follows N1 * scale^e, with e chosen so scale 77.56 gives H&M's full counts.
        static int At(double n1, double nFull, double s) =>
            (int)Math.Round(n1 * Math.Pow(s, Math.Log(nFull / n1) / Math.Log(FullScale)));
        return (At(409_857, 31_788_324, scale), At(23_838, 1_371_980, scale), At(56_690, 105_542, scale));
    }

    static string Fingerprint(PipelineConfig config) =>
        Convert.ToHexStringLower(XxHash64.Hash(Encoding.UTF8.GetBytes(CodeVersion + "\n" + config.Canonical(["synth"]))));

    /// <summary>
    /// Generates the configured files when none of them is there (data.synthesize = auto), or
    /// regenerates them when the generator's own mark (<see cref="GeneratedDataManifest"/>) says
    /// they were made with other synth settings or by a generation that did not finish. Files the
    /// generator did not write are never touched: a folder holding some but not all of the
    /// configured files, and no mark, is an error naming what is missing. Returns false when
    /// nothing had to be done.
    /// </summary>
    public static bool EnsureData(PipelineConfig config, IPipelineLog log)
    {
        var dir = config.Get(ConfigSchema.Data.Dir);
        var raw = DataFiles.IsRawLayout(config);
        var files = DataFiles.Generated(config);
        CheckPaths(dir, files);
        var fingerprint = Fingerprint(config) + (raw ? "-raw" : "");
        var mark = GeneratedDataManifest.Read(dir, files);
        if (mark is null)
        {
            // The user's own files: only those the configured split reads must be there.
            var inputs = DataFiles.All(config);
            var missing = inputs.Where(f => !File.Exists(f)).ToArray();
            if (missing.Length == 0)
            {
                log.Verbose($"{dir}: using the data files there (not generated)");
                return false;
            }
            if (missing.Length < inputs.Length || files.Except(inputs).Any(File.Exists))
                throw new PipelineError(
                    $"{dir} holds {string.Join(", ", files.Where(File.Exists).Select(Path.GetFileName))} but not " +
                    $"{string.Join(", ", missing.Select(Path.GetFileName))}: add the missing file(s), or point data.dir at an " +
                    "empty folder for built-in data (files not made by the generator are never replaced)");
        }
        else if (mark.IsCurrent(fingerprint, files))
        {
            log.Verbose($"{dir}: built-in data up to date");
            return false;
        }
        else if (mark.ForeignFiles(files).FirstOrDefault() is { } foreign)
            throw new PipelineError(
                $"{foreign} has changed since the built-in data generator wrote it, so it is not regenerated over: " +
                $"move it away, or delete {GeneratedDataManifest.PathIn(dir)} to use the folder's files as they are");

        if (config.Get(ConfigSchema.Data.Synthesize) == "never")
            throw new PipelineError(mark is null
                ? $"data file not found: {files.First(f => !File.Exists(f))} (data.synthesize is 'never')"
                : $"the built-in data in {dir} is incomplete or was made with other synth settings (data.synthesize is 'never'; set it to 'auto' to regenerate)");

        Directory.CreateDirectory(dir);
        var (t, c, a) = Sizes(config.Get(ConfigSchema.Synth.Scale));
        log.Info($"Synthesizing built-in data ({(raw ? "H&M raw layout" : "notebook layout")}) in {dir}: " +
                 $"{t:N0} training transactions, {c:N0} customers, {a:N0} articles");
        GeneratedDataManifest.WriteGenerating(dir, fingerprint, files);
        Write(config, files, raw);
        GeneratedDataManifest.WriteComplete(dir, fingerprint, files);
        return true;
    }

    /// <summary>data.dir must be a folder (or not exist yet) and each data file a file (or not exist yet).</summary>
    static void CheckPaths(string dir, string[] files)
    {
        if (File.Exists(dir))
            throw new PipelineError($"data.dir '{dir}' is a file; expected a folder holding the data files");
        foreach (var file in files.Where(Directory.Exists))
            throw new PipelineError($"'{file}' is a folder; expected a data file there (see data.* in the config)");
    }

    sealed record Article(string Id, int Cluster, int Garment, int Index, int PeakMonth, double Season, double Popularity, bool LateLaunch, float Price);

    /// <summary>
    /// Notebook layout: files = [train_df.csv, val_df.csv], joined rows. Raw layout: files =
    /// [transactions (both periods, article ids without the leading 0 as in H&amp;M's CSV), customers,
    /// articles], with 1.2% of ages empty and quoted commas in product names.
    /// </summary>
    static void Write(PipelineConfig config, string[] files, bool raw)
    {
        var (trainRows, customerCount, articleCount) = Sizes(config.Get(ConfigSchema.Synth.Scale));
        var valRows = (int)Math.Round(trainRows * config.Get(ConfigSchema.Synth.ValFraction));
        // The draws happen in this order (clusters, articles, customers, then the rows as they are
        // written): the same seed gives the same files byte for byte.
        var world = new World(new Rng((ulong)config.Get(ConfigSchema.Synth.Seed)), customerCount, articleCount, raw);
        if (!raw)
        {
            const string header = "t_dat,customer_id,article_id,price,sales_channel_id,age,month_sin,month_cos,garment_group_name,index_group_name\n";
            WriteFile(files[0], w => { w.Write(header); world.WritePeriod(w, 0, trainRows, 0, 730); });
            WriteFile(files[1], w => { w.Write(header); world.WritePeriod(w, 1, valRows, 730, 80); });
            return;
        }
        WriteFile(files[0], w =>
        {
            w.Write("t_dat,customer_id,article_id,price,sales_channel_id\n");
            world.WritePeriod(w, 0, trainRows, 0, 730);
            world.WritePeriod(w, 1, valRows, 730, 80);
        });
        WriteFile(files[1], world.WriteCustomers);
        WriteFile(files[2], world.WriteArticles);
    }

    static void WriteFile(string path, Action<TextWriter> write) =>
        ArtifactStore.WriteAtomic(path, stream =>
        {
            using var w = new StreamWriter(stream, new UTF8Encoding(false), 1 << 20);
            write(w);
        });

    /// <summary>The generating process's state: taste clusters, articles, customers and each customer's recent purchases.</summary>
    sealed class World
    {
        const int History = 8;
        static readonly DateTime Start = new(2018, 9, 20);

        Rng rng;
        readonly bool raw;
        readonly double[] clusterAge = new double[Clusters];
        readonly int[][] clusterGarments = new int[Clusters][];
        readonly int[] clusterIndex = new int[Clusters];
        readonly double[] clusterSize = new double[Clusters];
        readonly AliasTable clusterPick;
        readonly Article[] articles;
        /// <summary>Per period (train, validation), cluster and month: articles drawn by popularity × season.</summary>
        readonly AliasTable[,,] tables = new AliasTable[2, Clusters, 12];
        readonly byte[] ages, primary, secondary;
        readonly double[] activity;
        readonly bool[] late;
        readonly string[] customerIds;
        readonly AliasTable trainCustomers, valCustomers;
        readonly int[] history;
        readonly int[] historyCount;

        public World(Rng rng, int customerCount, int articleCount, bool raw)
        {
            this.rng = rng;
            this.raw = raw;
            MakeClusters();
            clusterPick = new AliasTable(Enumerable.Range(0, Clusters).ToArray(), clusterSize);
            articles = MakeArticles(articleCount);
            MakeTables();
            (ages, primary, secondary, activity, late, customerIds) =
                (new byte[customerCount], new byte[customerCount], new byte[customerCount], new double[customerCount], new bool[customerCount], new string[customerCount]);
            MakeCustomers();
            var everyone = Enumerable.Range(0, customerCount).ToArray();
            trainCustomers = new AliasTable(everyone, everyone.Select(c => late[c] ? 0 : activity[c]).ToArray());
            valCustomers = new AliasTable(everyone, activity);
            history = new int[customerCount * History];
            historyCount = new int[customerCount];
        }

        void MakeClusters()
        {
            for (var k = 0; k < Clusters; k++)
            {
                clusterAge[k] = 18 + 52 * rng.NextDouble();
                clusterGarments[k] = [rng.NextInt(GarmentGroups.Length), rng.NextInt(GarmentGroups.Length), rng.NextInt(GarmentGroups.Length)];
                clusterIndex[k] = rng.NextInt(IndexGroups.Length);
                clusterSize[k] = 0.5 + rng.NextDouble();
            }
        }

        Article[] MakeArticles(int articleCount)
        {
            var ranks = Enumerable.Range(1, articleCount).ToArray();
            rng.Shuffle(ranks.AsSpan());
            var made = new Article[articleCount];
            for (var i = 0; i < articleCount; i++)
            {
                var k = clusterPick.Sample(ref rng);
                var garment = rng.NextDouble() < 0.7 ? clusterGarments[k][rng.NextInt(3)] : rng.NextInt(GarmentGroups.Length);
                var index = rng.NextDouble() < 0.8 ? clusterIndex[k] : rng.NextInt(IndexGroups.Length);
                var seasonal = rng.NextDouble() < 0.3;
                made[i] = new Article(
                    Id: (108_775_000L + 7919L * i).ToString("D10", CultureInfo.InvariantCulture),
                    Cluster: k, Garment: garment, Index: index,
                    PeakMonth: 1 + rng.NextInt(12), Season: seasonal ? 1.2 : 0,
                    Popularity: Math.Pow(ranks[i], -0.9),
                    LateLaunch: rng.NextDouble() < 0.02,
                    Price: (float)Math.Round(0.005 + 0.05 * rng.NextDouble() * (1 + garment % 4), 4));
            }
            return made;
        }

        void MakeTables()
        {
            for (var period = 0; period < 2; period++)
            for (var k = 0; k < Clusters; k++)
            {
                var members = Enumerable.Range(0, articles.Length)
                    .Where(i => articles[i].Cluster == k && (period == 1 || !articles[i].LateLaunch)).ToArray();
                if (members.Length == 0)
                    members = [Enumerable.Range(0, articles.Length).First(i => period == 1 || !articles[i].LateLaunch)];
                for (var m = 0; m < 12; m++)
                {
                    var month = m + 1;
                    var weights = members.Select(i =>
                        articles[i].Popularity * Math.Exp(articles[i].Season * Math.Cos(2 * Math.PI * (month - articles[i].PeakMonth) / 12))).ToArray();
                    tables[period, k, m] = new AliasTable(members, weights);
                }
            }
        }

        void MakeCustomers()
        {
            for (var c = 0; c < ages.Length; c++)
            {
                var age = rng.NextDouble() < 0.6 ? 27 + 5 * rng.NextGaussian() : 50 + 9 * rng.NextGaussian();
                ages[c] = (byte)Math.Clamp(Math.Round(age), 16, 90);
                var byAge = Enumerable.Range(0, Clusters)
                    .Select(k => clusterSize[k] * Math.Exp(-Math.Pow(ages[c] - clusterAge[k], 2) / (2 * 12.0 * 12.0))).ToArray();
                primary[c] = (byte)SampleIndex(byAge, ref rng);
                secondary[c] = (byte)rng.NextInt(Clusters);
                activity[c] = Math.Exp(1.1 * rng.NextGaussian());
                late[c] = rng.NextDouble() < 0.04;
                customerIds[c] = HexId(c);
            }
        }

        /// <summary>`rows` transactions of one period (0 train, 1 validation), spread evenly over `days` days from Start + dayOffset.</summary>
        public void WritePeriod(TextWriter w, int period, int rows, int dayOffset, int days)
        {
            var customers = period == 0 ? trainCustomers : valCustomers;
            for (var r = 0; r < rows; r++)
            {
                var date = Start.AddDays(dayOffset + (long)r * days / rows);
                var c = customers.Sample(ref rng);
                var a = Purchase(c, period, date.Month);
                WriteTransaction(w, date, c, articles[a]);
            }
        }

        /// <summary>A repeat of one of the customer's last 8 articles (15%), else an article of their primary, secondary or a random cluster.</summary>
        int Purchase(int c, int period, int month)
        {
            int a;
            var seen = historyCount[c];
            if (seen > 0 && rng.NextDouble() < 0.15)
                a = history[c * History + rng.NextInt(Math.Min(seen, History))];
            else
            {
                var u = rng.NextDouble();
                var k = u < 0.65 ? primary[c] : u < 0.85 ? secondary[c] : clusterPick.Sample(ref rng);
                a = tables[period, k, month - 1].Sample(ref rng);
            }
            history[c * History + seen % History] = a;
            historyCount[c] = seen + 1;
            return a;
        }

        void WriteTransaction(TextWriter w, DateTime date, int c, Article art)
        {
            w.Write(date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
            w.Write(',');
            w.Write(customerIds[c]);
            w.Write(',');
            w.Write(raw ? art.Id.TrimStart('0') : art.Id);
            w.Write(',');
            w.Write(art.Price.ToString("R", CultureInfo.InvariantCulture));
            w.Write(',');
            w.Write(rng.NextDouble() < 0.7 ? '2' : '1');
            if (raw)
            {
                w.Write('\n');
                return;
            }
            w.Write(',');
            w.Write(ages[c]);
            w.Write(',');
            w.Write(MonthEncoding.Sin[date.Month].ToString("R", CultureInfo.InvariantCulture));
            w.Write(',');
            w.Write(MonthEncoding.Cos[date.Month].ToString("R", CultureInfo.InvariantCulture));
            w.Write(',');
            w.Write(CsvFile.Field(GarmentGroups[art.Garment]));
            w.Write(',');
            w.Write(CsvFile.Field(IndexGroups[art.Index]));
            w.Write('\n');
        }

        /// <summary>Raw layout: customers.csv (club status, news frequency, age with 1.2% empty, postal code).</summary>
        public void WriteCustomers(TextWriter w)
        {
            w.Write("customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n");
            for (var c = 0; c < ages.Length; c++)
            {
                var member = rng.NextDouble() < 0.93 ? "ACTIVE" : "PRE-CREATE";
                var news = rng.NextDouble() < 0.35 ? "Regularly" : "NONE";
                var age = rng.NextDouble() < 0.012 ? "" : ages[c].ToString(CultureInfo.InvariantCulture);
                w.Write($"{customerIds[c]},{(news == "Regularly" ? "1.0" : "")},{(news == "Regularly" ? "1.0" : "")},{member},{news},{age},{HexId(c % 4096 + 1_000_000)}\n");
            }
        }

        /// <summary>Raw layout: articles.csv (product code and name with quoted commas, type, colour, groups, a quoted description).</summary>
        public void WriteArticles(TextWriter w)
        {
            w.Write("article_id,product_code,prod_name,product_type_name,colour_group_name,index_group_name,garment_group_name,detail_desc\n");
            string[] colours = ["Black", "White", "Light Beige", "Dark Blue", "Red", "Greyish Beige", "Pink"];
            for (var i = 0; i < articles.Length; i++)
            {
                var art = articles[i];
                var colour = colours[rng.NextInt(colours.Length)];
                w.Write($"{art.Id},{art.Id[..7]},");
                w.Write(CsvFile.Field($"{GarmentGroups[art.Garment]} item {i % 997}" + (i % 5 == 0 ? ", 2-pack" : "")));
                w.Write(',');
                w.Write(CsvFile.Field(GarmentGroups[art.Garment].Split(' ')[0]));
                w.Write($",{colour},");
                w.Write(CsvFile.Field(IndexGroups[art.Index]));
                w.Write(',');
                w.Write(CsvFile.Field(GarmentGroups[art.Garment]));
                w.Write(',');
                w.Write(CsvFile.Field($"A \"{colour}\" piece, cluster {art.Cluster}, peak month {art.PeakMonth}"));
                w.Write('\n');
            }
        }
    }

    static int SampleIndex(double[] weights, ref Rng rng)
    {
        var u = rng.NextDouble() * weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            u -= weights[i];
            if (u < 0)
                return i;
        }
        return weights.Length - 1;
    }

    /// <summary>A 64-hex-character id like H&amp;M's, unique per index.</summary>
    static string HexId(int index)
    {
        Span<byte> seed = stackalloc byte[4];
        BitConverter.TryWriteBytes(seed, index);
        Span<byte> hash = stackalloc byte[32];
        for (var part = 0; part < 4; part++)
        {
            var h = XxHash64.HashToUInt64(seed, part);
            BitConverter.TryWriteBytes(hash[(part * 8)..], h);
        }
        // The first 4 bytes carry the index itself, so ids are unique.
        BitConverter.TryWriteBytes(hash, index);
        return Convert.ToHexStringLower(hash);
    }

}
