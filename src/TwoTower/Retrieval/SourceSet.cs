using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Retrieval;

/// <summary>A candidate in the union of the sources: each source's score and rank for it (NaN where the source did not propose it).</summary>
public sealed record UnionCandidate(int Article, float[] Scores, float[] Ranks);

/// <summary>
/// The enabled candidate sources (retrieve.* in pipeline.yaml), built from the purchases as of one
/// day, and the union of their candidates per customer. The same code builds them for the blend's
/// training (as of the first label day) and for evaluation and serving (as of the end of training).
/// </summary>
public sealed class SourceSet
{
    public Purchases Purchases { get; }
    public IReadOnlyList<ICandidateSource> Sources { get; }
    /// <summary>The model's source when enabled (its dot products are also a blend feature).</summary>
    public IModelScorer? Model { get; }

    public SourceSet(Purchases purchases, IReadOnlyList<ICandidateSource> sources) =>
        (Purchases, Sources, Model) = (purchases, sources, sources.OfType<IModelScorer>().FirstOrDefault());

    /// <param name="customers">The customers the two-tower source will be asked about (it embeds them in one batch).</param>
    public static SourceSet Build(PipelineConfig config, Purchases purchases, TrainingColumns train, FeatureSet features,
        IReadOnlyDictionary<string, NormalizationStats> normalization, TwoTowerModel model, IKernels kernels, IReadOnlyList<int> customers,
        IPipelineLog? log = null)
    {
        var lastRow = LastRows(train, features, purchases.CustomerCount, purchases.AsOfDay);
        ICandidateSource[] twoTower = config.Get(ConfigSchema.RetrieveTwoTower.Enabled)
            ? [new TwoTowerSource(model, kernels, train, features, purchases, lastRow, customers, (int)config.Get(ConfigSchema.RetrieveTwoTower.Count))]
            : [];
        return new SourceSet(purchases, [.. twoTower, .. HistorySources(config, purchases, Segments(config, train, features, normalization, lastRow), null, log)]);
    }

    /// <summary>
    /// Each customer's last training row before `beforeDay` (the latest day; of equal days, or in
    /// data without days, the later row), −1 for none: where the model's query, the customer's
    /// segment and a package's customer features come from.
    /// </summary>
    public static int[] LastRows(TrainingColumns train, FeatureSet features, int customerCount, int beforeDay = int.MaxValue)
    {
        var customers = train.Ints[features.QueryId];
        var days = train.Ints.GetValueOrDefault(DataFiles.DayColumn);
        var last = Enumerable.Repeat(-1, customerCount).ToArray();
        for (var r = 0; r < customers.Length; r++)
        {
            var c = customers[r];
            var day = days?[r] ?? 0;
            if (day < beforeDay && (last[c] < 0 || (days?[last[c]] ?? 0) <= day))
                last[c] = r;
        }
        return last;
    }

    /// <summary>
    /// The enabled sources that need only the purchases, in config order after two_tower (which,
    /// when enabled, always comes first): buy_again, recent_popularity, co_purchase, ease, item_knn.
    /// The item-to-item tables are built from the purchases unless given by source name (a package holds them).
    /// </summary>
    /// <param name="log">Where the time each table took to build is written (verbose), if anywhere.</param>
    public static List<ICandidateSource> HistorySources(PipelineConfig config, Purchases purchases, int[]? segments,
        IReadOnlyDictionary<string, ItemNeighbours>? builtNeighbours, IPipelineLog? log = null)
    {
        var sources = new List<ICandidateSource>();
        if (config.Get(ConfigSchema.RetrieveBuyAgain.Enabled))
            sources.Add(new BuyAgainSource(purchases, (int)config.Get(ConfigSchema.RetrieveBuyAgain.Count), config.Get(ConfigSchema.RetrieveBuyAgain.HalfLifeDays)));
        if (config.Get(ConfigSchema.RetrieveRecentPopularity.Enabled))
            sources.Add(new PopularitySource(purchases, (int)config.Get(ConfigSchema.RetrieveRecentPopularity.Count),
                (int)config.Get(ConfigSchema.RetrieveRecentPopularity.WindowDays), config.Get(ConfigSchema.RetrieveRecentPopularity.HalfLifeDays), segments));
        ItemNeighbours Neighbours(string name, Func<ItemNeighbours> build)
        {
            if (builtNeighbours?.GetValueOrDefault(name) is { } built)
                return built;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var table = build();
            log?.Verbose($"  {name}: item-to-item table built in {watch.Elapsed.TotalSeconds:F1} s");
            return table;
        }
        if (config.Get(ConfigSchema.RetrieveCoPurchase.Enabled))
            sources.Add(new NeighbourSource(CoPurchaseName, purchases, (int)config.Get(ConfigSchema.RetrieveCoPurchase.Count),
                (int)config.Get(ConfigSchema.RetrieveCoPurchase.RecentArticles), config.Get(ConfigSchema.RetrieveCoPurchase.HalfLifeDays),
                Neighbours(CoPurchaseName, () => CoPurchase.Neighbours(purchases, (int)config.Get(ConfigSchema.RetrieveCoPurchase.WindowDays),
                    (int)config.Get(ConfigSchema.RetrieveCoPurchase.Neighbours), CoPurchase.Weighting.Conditional))));
        // EASE and item-kNN score the customer's binary row: every distinct article, unweighted by age.
        if (config.Get(ConfigSchema.RetrieveEase.Enabled))
            sources.Add(new NeighbourSource(EaseName, purchases, (int)config.Get(ConfigSchema.RetrieveEase.Count), int.MaxValue, double.PositiveInfinity,
                Neighbours(EaseName, () => Ease.Neighbours(purchases, (int)config.Get(ConfigSchema.RetrieveEase.Articles),
                    config.Get(ConfigSchema.RetrieveEase.Lambda), (int)config.Get(ConfigSchema.RetrieveEase.Neighbours)))));
        if (config.Get(ConfigSchema.RetrieveItemKnn.Enabled))
            sources.Add(new NeighbourSource(ItemKnnName, purchases, (int)config.Get(ConfigSchema.RetrieveItemKnn.Count), int.MaxValue, double.PositiveInfinity,
                Neighbours(ItemKnnName, () => CoPurchase.Neighbours(purchases, int.MaxValue, (int)config.Get(ConfigSchema.RetrieveItemKnn.Neighbours),
                    CoPurchase.Weighting.Cosine))));
        if (sources.Count == 0 && !config.Get(ConfigSchema.RetrieveTwoTower.Enabled))
            throw config.ErrorAt(ConfigSchema.RetrieveTwoTower.Enabled.Key, "every candidate source is disabled: enable at least one under retrieve.*");
        return sources;
    }

    public const string CoPurchaseName = "co_purchase";
    public const string EaseName = "ease";
    public const string ItemKnnName = "item_knn";

    /// <summary>
    /// Each customer's segment for recent_popularity, from their last row before the as-of day: a
    /// categorical query feature's id, or a numeric one's band (raw value / segment_width); null for none.
    /// </summary>
    static int[]? Segments(PipelineConfig config, TrainingColumns train, FeatureSet features,
        IReadOnlyDictionary<string, NormalizationStats> normalization, int[] lastRow)
    {
        var column = config.Get(ConfigSchema.RetrieveRecentPopularity.Segment);
        if (column == "none")
            return null;
        var feature = features.Query.FirstOrDefault(f => f.Column == column)
            ?? throw config.ErrorAt(ConfigSchema.RetrieveRecentPopularity.Segment.Key,
                $"'{column}' is not a query feature; expected none or one of: {string.Join(", ", features.Query.Select(f => f.Column))}");
        var width = config.Get(ConfigSchema.RetrieveRecentPopularity.SegmentWidth);
        return lastRow.Select(r =>
        {
            if (r < 0)
                return -1;
            if (feature.IsCategorical)
                return train.Ints[column][r];
            var stats = normalization[column];
            var raw = train.Floats[column][r] * stats.Std + stats.Mean;
            return double.IsFinite(raw) ? (int)Math.Floor(Math.Max(0, raw) / width) : -1;
        }).ToArray();
    }

    /// <summary>Per thread, reused: a union's position of each article, and one source's list.</summary>
    [ThreadStatic] static (Dictionary<int, int> Position, List<Candidate> List)? scratchOfThread;

    /// <summary>The distinct articles all sources propose for the customer, in the order they first appear (sources in config order).</summary>
    public List<UnionCandidate> Union(int customer)
    {
        var union = new List<UnionCandidate>();
        var (index, list) = scratchOfThread ??= ([], []);
        index.Clear();
        for (var s = 0; s < Sources.Count; s++)
        {
            Sources[s].Candidates(customer, list);
            for (var r = 0; r < list.Count; r++)
            {
                if (!index.TryGetValue(list[r].Article, out var at))
                {
                    index[list[r].Article] = at = union.Count;
                    var (scores, ranks) = (new float[Sources.Count], new float[Sources.Count]);
                    scores.AsSpan().Fill(float.NaN);
                    ranks.AsSpan().Fill(float.NaN);
                    union.Add(new UnionCandidate(list[r].Article, scores, ranks));
                }
                union[at].Scores[s] = list[r].Score;
                union[at].Ranks[s] = r + 1;
            }
        }
        return union;
    }
}
