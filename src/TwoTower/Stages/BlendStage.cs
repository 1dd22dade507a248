using System.Diagnostics;
using System.Text.Json;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;
using TwoTower.Retrieval;

namespace TwoTower.Stages;

/// <summary>
/// Blend: trains the ranker that orders the candidate sources' union, on a time split inside the
/// training period: the sources are built from the purchases before the last blend.label_days of
/// training, and the labels are what each customer bought in those days (with blend.label_windows,
/// the same for each of that many consecutive windows, their rows learned together). Nothing of the
/// validation period is read. Writes ranker.zip (when blend.enabled) and blend.json (the split, the rows, each
/// source's and the union's recall of the label days' purchases, each feature's share of the ranker's split gain).
/// </summary>
public sealed class BlendStage : Stage
{
    public override string Name => "blend";
    public override string CodeVersion => "blend-6";
    public override IReadOnlyList<string> ConfigKeys => ["retrieve", "blend", "features", "model", "seed", "threads", "accelerator"];
    public override IReadOnlyList<string> Upstream => ["train"];

    public sealed record SourceRecall(string Source, double LabelRecall, double MeanCandidates);

    /// <summary>The held-out customers' MAP@12 by the first `Trees` trees of the ranker fitted without them.</summary>
    public sealed record HoldoutPoint(int Trees, double Map12);

    /// <summary>A feature's share of the ranker's split gain (<see cref="BlendRanker.GainShares"/>).</summary>
    public sealed record FeatureGain(string Feature, double Share);

    public sealed record Summary(string FirstLabelDay, string LastLabelDay, int LabelCustomers, int TrainingCustomers, int CustomersWithoutPositive,
        int Rows, int Positives, IReadOnlyList<SourceRecall> Sources, double UnionRecall, double MeanUnionSize, IReadOnlyList<string> Features,
        int HoldoutCustomers, IReadOnlyList<HoldoutPoint> HoldoutMap12, int Trees, IReadOnlyList<FeatureGain> FeatureGains, double Seconds);

    public override void Execute(StageRun run)
    {
        var config = run.Config;
        var watch = Stopwatch.StartNew();
        var features = FeatureSet.From(config);
        var train = TrainingColumns.Read(run.Store, "train");
        if (!train.Ints.ContainsKey(DataFiles.DayColumn))
        {
            run.Log.Warning("Blend: the data has no purchase dates (t_dat), so there are no candidate sources or blend; Evaluate reports the model alone");
            ArtifactStore.WriteAtomic(run.Output(BlendArtifacts.SummaryFile), "{\"skipped\": \"no purchase dates (t_dat) in the data\"}\n");
            return;
        }
        var columns = BlendArtifacts.Columns.From(train, features, TrainedModel.VocabularySizes(run.Store, features));
        var labelDays = (int)config.Get(ConfigSchema.Blend.LabelDays);
        var windows = (int)config.Get(ConfigSchema.Blend.LabelWindows);
        var earliestLabelDay = columns.LastDay - (long)windows * labelDays + 1;
        if (earliestLabelDay <= columns.Days.Min())
            throw config.ErrorAt(windows > 1 ? ConfigSchema.Blend.LabelWindows.Key : ConfigSchema.Blend.LabelDays.Key,
                $"{windows} label window(s) of {labelDays} days reach back to the first training day " +
                $"({DateOnly.FromDayNumber(columns.Days.Min()):yyyy-MM-dd}; the training data spans {columns.LastDay - columns.Days.Min() + 1} days): " +
                "the candidate sources need purchases before the label days; use fewer or shorter windows");
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, run.Log);
        // blend.retrain_model: a model per window, trained on the days before it; else the trained model for all.
        var trained = config.Get(ConfigSchema.Blend.RetrainModel) ? null : TrainedModel.Load(run.Store, config);
        var names = new List<string>();
        // Every window's rows in one set: window w's customer c is group w · customerCount + c (the last window's groups are the customer ids).
        var rowLists = new RowLists();
        var allLabels = new Dictionary<int, HashSet<int>>();
        var summaries = new List<Summary>();
        // Oldest window first; each is what one window's blend would learn from, the sources as of its first day.
        for (var w = windows - 1; w >= 0; w--)
        {
            var lastLabelDay = columns.LastDay - w * labelDays;
            var firstLabelDay = lastLabelDay - labelDays + 1;
            var history = columns.AsOf(firstLabelDay);
            var labels = LabelBaskets(columns, firstLabelDay, lastLabelDay);
            var customers = SampleCustomers(labels.Keys.Where(c => history.ArticlesOf(c).Length > 0),
                (int)config.Get(ConfigSchema.Blend.TrainingCustomers), (int)config.Get(ConfigSchema.Blend.Seed));
            run.Log.Info($"Blend: sources from the purchases before {DateOnly.FromDayNumber(firstLabelDay):yyyy-MM-dd}, labels from then to " +
                         $"{DateOnly.FromDayNumber(lastLabelDay):yyyy-MM-dd}: {labels.Count:N0} customers bought, {customers.Count:N0} of them with history learn");
            var windowWatch = Stopwatch.StartNew();
            var (model, sourceRows) = trained is null
                ? TrainBefore(firstLabelDay, config, features, train, TrainedModel.VocabularySizes(run.Store, features), kernels, run.Log)
                : (trained, train);
            var sources = SourceSet.Build(config, history, sourceRows, features, NormalizationStats.ReadAll(run.Store.StageDir("normalize")), model, kernels, customers, run.Log);
            run.Log.Info($"Blend: sources built in {windowWatch.Elapsed.TotalSeconds:F1} s");
            var blendFeatures = new BlendFeatures(history, sources.Sources.Select(x => x.Name).ToArray());
            names = [.. blendFeatures.Names];
            var phase = Stopwatch.StartNew();
            var groupOffset = w * columns.CustomerCount;
            foreach (var (customer, basket) in labels)
                allLabels[groupOffset + customer] = basket;
            var windowSummary = TrainingRows(sources, blendFeatures, customers, labels, groupOffset, rowLists, run.Log);
            run.Log.Info($"Blend: candidates and features of {customers.Count:N0} customers in {phase.Elapsed.TotalSeconds:F1} s");
            summaries.Add(windowSummary with
            {
                FirstLabelDay = $"{DateOnly.FromDayNumber(firstLabelDay):yyyy-MM-dd}",
                LastLabelDay = $"{DateOnly.FromDayNumber(lastLabelDay):yyyy-MM-dd}",
                LabelCustomers = labels.Count,
            });
        }
        var allRows = rowLists.ToRows();
        if (allRows.Groups.Length == 0 && config.Get(ConfigSchema.Blend.Enabled))
            throw config.ErrorAt(windows > 1 ? ConfigSchema.Blend.LabelWindows.Key : ConfigSchema.Blend.LabelDays.Key,
                "no customer of the label days bought before them and had a label-day purchase among the candidates, so the ranker has nothing to learn: " +
                "use longer or more label windows, or blend.enabled: false");
        var summary = Combine(summaries) with { Features = names };
        if (config.Get(ConfigSchema.Blend.Enabled))
        {
            var settings = new BlendRanker.Settings((int)config.Get(ConfigSchema.Blend.Trees), (int)config.Get(ConfigSchema.Blend.Leaves),
                config.Get(ConfigSchema.Blend.LearningRate), (int)config.Get(ConfigSchema.Blend.MinRowsInLeaf), (int)config.Get(ConfigSchema.Blend.Seed));
            var phase = Stopwatch.StartNew();
            var (holdout, curve, trees) = ChooseTreeCount(allRows, names.Count, allLabels, columns.CustomerCount, settings,
                config.Get(ConfigSchema.Blend.HoldoutCustomers), (int)config.Get(ConfigSchema.Blend.HoldoutFolds), config.Get(ConfigSchema.Blend.TreeTolerance), run.Log);
            settings = settings with { Trees = trees };
            if (curve.Count > 0)
                run.Log.Info($"Blend: tree count chosen in {phase.Elapsed.TotalSeconds:F1} s");
            phase.Restart();
            run.Log.Info($"Blend: training the LambdaRank ranker on {allRows.Groups.Length:N0} rows ({allRows.Labels.Count(l => l > 0):N0} positives), " +
                         $"{names.Count} features, {settings.Trees} trees");
            var ranker = BlendRanker.Train(allRows.Features, names.Count, allRows.Labels, allRows.Groups, settings);
            ranker.Save(run.Output(BlendArtifacts.RankerFile));
            run.Log.Info($"Blend: ranker fitted in {phase.Elapsed.TotalSeconds:F1} s");
            var gains = ranker.GainShares().Select((share, f) => new FeatureGain(names[f], share)).OrderByDescending(g => g.Share).ToArray();
            summary = summary with { HoldoutCustomers = holdout, HoldoutMap12 = curve, Trees = ranker.TreeCount, FeatureGains = gains };
            run.Log.Info("Blend: the ranker's split gain by feature: " + string.Join(", ", gains.Where(g => g.Share >= 0.01).Select(g => $"{g.Feature} {g.Share:P1}")) +
                         $"; {gains.Count(g => g.Share < 0.01)} others {gains.Where(g => g.Share < 0.01).Sum(g => g.Share):P1}");
        }
        summary = summary with { Seconds = watch.Elapsed.TotalSeconds };
        ArtifactStore.WriteAtomic(run.Output(BlendArtifacts.SummaryFile),
            JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        foreach (var s in summary.Sources)
            run.Log.Info($"  {s.Source,-18} recall of the label days' purchases {s.LabelRecall:F4} ({s.MeanCandidates:F0} candidates per customer)");
        run.Log.Info($"  {"union",-18} recall {summary.UnionRecall:F4} ({summary.MeanUnionSize:F0} candidates per customer); {watch.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// blend.retrain_model: the model trained as Train trains it (same settings, seed and epochs) on
    /// the training rows before the label days, and those rows (the two_tower source's catalogue).
    /// </summary>
    internal static (TwoTowerModel Model, TrainingColumns Rows) TrainBefore(int firstLabelDay, PipelineConfig config, FeatureSet features,
        TrainingColumns train, IReadOnlyDictionary<string, int> vocabularySizes, IKernels kernels, IPipelineLog log)
    {
        var days = train.Ints[DataFiles.DayColumn];
        var rows = train.Subset(Enumerable.Range(0, train.RowCount).Where(r => days[r] < firstLabelDay).ToArray());
        var model = TwoTowerModel.Create(config, vocabularySizes);
        model.Initialize(config.Get(ConfigSchema.Seed));
        var options = TrainOptions.From(config);
        using var trainer = new Trainer(model, kernels, options, rows, features.CandidateId);
        for (var epoch = 1; epoch <= options.Epochs; epoch++)
        {
            var stats = trainer.RunEpoch(epoch);
            log.Info($"Blend: the model before the label days, epoch {epoch}/{options.Epochs} on {rows.RowCount:N0} rows: loss {stats.LossPerExample:F4} per example, {stats.Seconds:F1} s");
        }
        return (model, rows);
    }

    /// <summary>
    /// How many trees the ranker keeps, chosen inside the training period: a seeded share of the
    /// learning customers is held out (in turn `folds` disjoint such shares), a ranker of blend.trees
    /// is fitted on the others, and each prefix of its trees (every 10) orders the held-out customers'
    /// unions; their MAP@12 against the label days' baskets, over every fold's held-out customers,
    /// makes the curve, and the fewest trees within `tolerance` (relative) of its best are kept. When
    /// nothing is held out: no curve, and blend.trees.
    /// </summary>
    static (int HoldoutCustomers, List<HoldoutPoint> Curve, int Trees) ChooseTreeCount(Rows rows, int featureCount, Dictionary<int, HashSet<int>> labels,
        int customerCount, BlendRanker.Settings settings, double share, int folds, double tolerance, IPipelineLog log)
    {
        // A customer is held out with all their windows (a group is window · customerCount + customer).
        var customers = rows.Groups.Select(g => g % customerCount).Distinct().ToArray();
        var heldCount = (int)Math.Round(customers.Length * share);
        if (heldCount == 0 || heldCount * folds > customers.Length || heldCount == customers.Length)
            return (0, [], settings.Trees);
        new Rng((ulong)settings.Seed + 1).Shuffle(customers.AsSpan());
        // Fold f holds out customers [f · heldCount, (f + 1) · heldCount) of the shuffle. A point of the curve is the mean AP@12 over
        // every held-out group of every fold, at a tree count every fold's probe reached.
        var points = new SortedDictionary<int, (double Sum, int Groups, int Folds)>();
        for (var f = 0; f < folds; f++)
        {
            var held = customers.Skip(f * heldCount).Take(heldCount).ToHashSet();
            var (fit, test) = (Subset(rows, featureCount, r => !held.Contains(rows.Groups[r] % customerCount)),
                Subset(rows, featureCount, r => held.Contains(rows.Groups[r] % customerCount)));
            log.Info($"Blend: choosing the number of trees on {heldCount:N0} held-out customers ({test.Groups.Length:N0} rows), fitting on the other {customers.Length - heldCount:N0}" +
                     (folds > 1 ? $" (fold {f + 1} of {folds})" : ""));
            var probe = BlendRanker.Train(fit.Features, featureCount, fit.Labels, fit.Groups, settings);
            foreach (var (trees, scores) in probe.ScoresByTreeCount(test.Features, 10))
            {
                var (sum, groups) = HeldOutApSum(test, scores, labels);
                var (s, g, n) = points.GetValueOrDefault(trees);
                points[trees] = (s + sum, g + groups, n + 1);
            }
        }
        var curve = points.Where(p => p.Value.Folds == folds).Select(p => new HoldoutPoint(p.Key, p.Value.Sum / p.Value.Groups)).ToList();
        var best = curve.Max(p => p.Map12);
        var kept = curve.First(p => p.Map12 >= (1 - tolerance) * best).Trees;
        log.Info($"  held-out MAP@12 by trees: {string.Join(", ", curve.Where((_, i) => i % 2 == 1 || i == curve.Count - 1).Select(p => $"{p.Trees}: {p.Map12:F4}"))}; " +
                 $"keeping {kept} (the fewest within {tolerance:P0} of the best, {best:F4})");
        return (heldCount * folds, curve, kept);
    }

    static Rows Subset(Rows rows, int featureCount, Func<int, bool> keepRow)
    {
        var keep = Enumerable.Range(0, rows.Groups.Length).Where(keepRow).ToArray();
        return new Rows(keep.SelectMany(r => rows.Features.AsSpan(r * featureCount, featureCount).ToArray()).ToArray(),
            keep.Select(r => rows.Labels[r]).ToArray(), keep.Select(r => rows.Groups[r]).ToArray(), keep.Select(r => rows.Articles[r]).ToArray());
    }

    /// <summary>The sum of the held-out groups' AP@12 when each group's rows are ordered by the scores, and how many groups there are.</summary>
    static (double Sum, int Groups) HeldOutApSum(Rows test, float[] scores, Dictionary<int, HashSet<int>> labels)
    {
        double sum = 0;
        var count = 0;
        for (var start = 0; start < test.Groups.Length; count++)
        {
            var end = start;
            while (end < test.Groups.Length && test.Groups[end] == test.Groups[start])
                end++;
            var top = Enumerable.Range(start, end - start).OrderByDescending(r => scores[r]).ThenBy(r => r).Take(12).Select(r => test.Articles[r]).ToArray();
            sum += Evaluation.BasketMetrics.AveragePrecision(top, labels[test.Groups[start]]);
            start = end;
        }
        return (sum, count);
    }

    /// <summary>Each customer's distinct articles bought from the first to the last label day.</summary>
    static Dictionary<int, HashSet<int>> LabelBaskets(BlendArtifacts.Columns columns, int firstLabelDay, int lastLabelDay)
    {
        var baskets = new Dictionary<int, HashSet<int>>();
        for (var r = 0; r < columns.Days.Length; r++)
        {
            if (columns.Days[r] < firstLabelDay || columns.Days[r] > lastLabelDay)
                continue;
            if (!baskets.TryGetValue(columns.Customers[r], out var basket))
                baskets[columns.Customers[r]] = basket = [];
            basket.Add(columns.Articles[r]);
        }
        return baskets;
    }

    /// <summary>The windows' summaries as one: first and last label day of all, counts summed, recalls and sizes averaged over the learning customers.</summary>
    static Summary Combine(IReadOnlyList<Summary> windows)
    {
        if (windows.Count == 1)
            return windows[0];
        var n = Math.Max(1, windows.Sum(x => x.TrainingCustomers));
        double Mean(Func<Summary, double> value) => windows.Sum(x => value(x) * x.TrainingCustomers) / n;
        return windows[^1] with
        {
            FirstLabelDay = windows[0].FirstLabelDay,
            LabelCustomers = windows.Sum(x => x.LabelCustomers),
            TrainingCustomers = windows.Sum(x => x.TrainingCustomers),
            CustomersWithoutPositive = windows.Sum(x => x.CustomersWithoutPositive),
            Rows = windows.Sum(x => x.Rows),
            Positives = windows.Sum(x => x.Positives),
            Sources = windows[^1].Sources.Select((s, i) => s with
            {
                LabelRecall = Mean(x => x.Sources[i].LabelRecall),
                MeanCandidates = Mean(x => x.Sources[i].MeanCandidates),
            }).ToArray(),
            UnionRecall = Mean(x => x.UnionRecall),
            MeanUnionSize = Mean(x => x.MeanUnionSize),
        };
    }

    /// <summary>At most `limit` customers, a seeded sample, in id order.</summary>
    static List<int> SampleCustomers(IEnumerable<int> candidates, int limit, int seed)
    {
        var all = candidates.Order().ToArray();
        var rng = new Rng((ulong)seed);
        rng.Shuffle(all.AsSpan());
        return all.Take(limit).Order().ToList();
    }

    /// <summary>The ranker's rows: features (row-major), label, customer (consecutive per customer) and candidate article of each.</summary>
    public sealed record Rows(float[] Features, float[] Labels, int[] Groups, int[] Articles);

    /// <summary>The rows as they are added, window after window.</summary>
    sealed class RowLists
    {
        public readonly List<float> Features = [], Labels = [];
        public readonly List<int> Groups = [], Articles = [];

        public Rows ToRows() => new([.. Features], [.. Labels], [.. Groups], [.. Articles]);
    }

    /// <summary>
    /// Adds every (customer, candidate of the union) with its features and label to `rows`, the
    /// customer's group offset by `groupOffset`; customers whose union holds none of their label-day
    /// purchases teach a ranker nothing and are left out (counted). Returns the window's summary.
    /// </summary>
    static Summary TrainingRows(SourceSet sources, BlendFeatures blendFeatures, IReadOnlyList<int> customers,
        Dictionary<int, HashSet<int>> labels, int groupOffset, RowLists rows, IPipelineLog log)
    {
        var (added, labelled) = (rows.Groups.Count, 0);
        var sourceHits = new double[sources.Sources.Count];
        var sourceSizes = new double[sources.Sources.Count];
        double unionHits = 0, unionSize = 0;
        var skipped = 0;
        var last = Stopwatch.StartNew();
        for (var i = 0; i < customers.Count; i++)
        {
            var customer = customers[i];
            var basket = labels[customer];
            var union = sources.Union(customer);
            for (var s = 0; s < sources.Sources.Count; s++)
            {
                var proposed = union.Where(c => !float.IsNaN(c.Ranks[s])).ToArray();
                sourceHits[s] += proposed.Count(c => basket.Contains(c.Article)) / (double)basket.Count;
                sourceSizes[s] += proposed.Length;
            }
            var positives = union.Count(c => basket.Contains(c.Article));
            unionHits += positives / (double)basket.Count;
            unionSize += union.Count;
            if (positives == 0)
            {
                skipped++;
                continue;
            }
            rows.Features.AddRange(blendFeatures.Compute(sources.Model, customer, union));
            foreach (var c in union)
            {
                rows.Labels.Add(basket.Contains(c.Article) ? 1 : 0);
                rows.Groups.Add(groupOffset + customer);
                rows.Articles.Add(c.Article);
            }
            labelled += positives;
            if (last.Elapsed.TotalSeconds > 10)
            {
                log.Info($"  Blend: candidates and features for {i + 1:N0} of {customers.Count:N0} customers");
                last.Restart();
            }
        }
        var n = Math.Max(1, customers.Count);
        return new Summary("", "", 0, customers.Count, skipped, rows.Groups.Count - added, labelled,
            sources.Sources.Select((s, i) => new SourceRecall(s.Name, sourceHits[i] / n, sourceSizes[i] / n)).ToArray(),
            unionHits / n, unionSize / n, [], 0, [], 0, [], 0);
    }
}
