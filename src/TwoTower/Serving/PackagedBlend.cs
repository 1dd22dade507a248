using System.Text.Json.Nodes;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Model;
using TwoTower.Retrieval;

namespace TwoTower.Serving;

/// <summary>
/// The blend as a package serves it: the training purchases, the item-to-item tables (co-purchase, EASE, item-kNN), the
/// popularity segments and the ranker (written by Package), rebuilt into the same sources as
/// Evaluate's. Per request the two-tower candidates come from the query just embedded (index or
/// exact), the other sources from these tables, and the ranker orders their union.
/// </summary>
public sealed class PackagedBlend
{
    public const string PurchasesFile = "purchases.parquet";
    public const string SegmentsFile = "segments.parquet";

    /// <summary>An item-to-item source's table (co_purchase.parquet, ease.parquet, item_knn.parquet).</summary>
    public static string NeighboursFile(string source) => source + ".parquet";

    /// <summary>Candidates fixed for one request (the two-tower's top N of this query), with the model's score of any article.</summary>
    sealed class RequestModelSource(int count, IReadOnlyList<Candidate> top, Func<int, ModelScore> score) : ICandidateSource, IModelScorer
    {
        public string Name => TwoTowerSource.SourceName;
        public int Count => count;

        public void Candidates(int customer, List<Candidate> output)
        {
            output.Clear();
            output.AddRange(top);
        }

        public ModelScore Score(int customer, int article) => score(article);
    }

    readonly Purchases purchases;
    readonly ICandidateSource?[] sources;   // null where the two-tower source goes
    readonly BlendFeatures features;
    readonly BlendRanker? ranker;

    /// <summary>The training purchases (customer and article vocabulary ids, days), as the sources read them.</summary>
    public Purchases Purchases => purchases;

    /// <summary>The day after the last training day: the sources' as-of day.</summary>
    public int AsOfDay => purchases.AsOfDay;

    /// <summary>The sources in the union's order (a candidate's <see cref="UnionCandidate.Ranks"/> are in this order).</summary>
    public IReadOnlyList<string> SourceNames { get; }

    /// <summary>How many model candidates a request brings (0 when the two-tower source is disabled).</summary>
    public int ModelCount { get; }

    PackagedBlend(Purchases purchases, ICandidateSource?[] sources, int modelCount, BlendFeatures features, BlendRanker? ranker) =>
        (this.purchases, this.sources, ModelCount, this.features, this.ranker, SourceNames) =
        (purchases, sources, modelCount, features, ranker, sources.Select(s => s?.Name ?? TwoTowerSource.SourceName).ToArray());

    /// <summary>The package's blend, or null for a package without one (data without dates).</summary>
    public static PackagedBlend? Load(string packageDir, PipelineConfig config, int customerCount, int articleCount)
    {
        string File(string name) => Path.Combine(packageDir, name);
        if (!System.IO.File.Exists(File(PurchasesFile)))
            return null;
        var rows = ColumnTable.ReadParquet(File(PurchasesFile));
        var days = rows.Ints(DataFiles.DayColumn);
        var purchases = Purchases.From(rows.Ints("customer"), rows.Ints("article"), days, customerCount, articleCount, days.Max() + 1);
        var segments = System.IO.File.Exists(File(SegmentsFile)) ? ColumnTable.ReadParquet(File(SegmentsFile)).Ints("segment") : null;
        var neighbours = new[] { SourceSet.CoPurchaseName, SourceSet.EaseName, SourceSet.ItemKnnName }
            .Where(name => System.IO.File.Exists(File(NeighboursFile(name))))
            .ToDictionary(name => name, name => ItemNeighbours.FromTable(ColumnTable.ReadParquet(File(NeighboursFile(name))), articleCount));
        var modelCount = config.Get(ConfigSchema.RetrieveTwoTower.Enabled) ? (int)config.Get(ConfigSchema.RetrieveTwoTower.Count) : 0;
        ICandidateSource?[] list = [.. modelCount > 0 ? new ICandidateSource?[] { null } : [], .. SourceSet.HistorySources(config, purchases, segments, neighbours)];
        var features = new BlendFeatures(purchases, list.Select(s => s?.Name ?? TwoTowerSource.SourceName).ToArray());
        var rankerPath = File(BlendArtifacts.RankerFile);
        if (!System.IO.File.Exists(rankerPath))
            return new PackagedBlend(purchases, list, modelCount, features, null);
        CheckFeatures(File(BlendArtifacts.SummaryFile), features.Names);
        return new PackagedBlend(purchases, list, modelCount, features, BlendRanker.Load(rankerPath, features.Count));
    }

    /// <summary>
    /// The ranker reads its features by position: a package whose ranker learnt other features (one built
    /// by another version) would score silently wrong, so it is refused, naming what differs.
    /// </summary>
    static void CheckFeatures(string summaryPath, IReadOnlyList<string> names)
    {
        string[]? learnt;
        try
        {
            learnt = System.IO.File.Exists(summaryPath)
                ? JsonNode.Parse(System.IO.File.ReadAllText(summaryPath))?["features"]?.AsArray().Select(n => n?.GetValue<string>() ?? "").ToArray()
                : null;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            learnt = null;
        }
        if (learnt is null)
            throw new PipelineError($"{summaryPath}: missing, or without the ranker's feature list: build the package again (--target=Package)");
        if (!learnt.SequenceEqual(names))
            throw new PipelineError($"{summaryPath}: the package's ranker learnt other features than this version computes " +
                                    $"(the package's alone: {PipelineError.Excerpt(string.Join(", ", learnt.Except(names).DefaultIfEmpty("none")))}; " +
                                    $"this version's alone: {PipelineError.Excerpt(string.Join(", ", names.Except(learnt).DefaultIfEmpty("none")))}; or another order): " +
                                    "it was built by another version; build it again (--target=Package)");
    }

    /// <summary>Writes what <see cref="Load"/> reads, from the sources built as of the end of training.</summary>
    public static void Write(string packageDir, SourceSet sources)
    {
        var p = sources.Purchases;
        var customers = new int[p.RowCount];
        for (var c = 0; c < p.CustomerCount; c++)
            customers.AsSpan(p.Start[c], p.Start[c + 1] - p.Start[c]).Fill(c);
        new ColumnTable().Add("customer", customers).Add("article", p.Articles).Add(DataFiles.DayColumn, p.Days)
            .WriteParquet(Path.Combine(packageDir, PurchasesFile));
        if (sources.Sources.OfType<PopularitySource>().FirstOrDefault()?.SegmentOfCustomer is { } segments)
            new ColumnTable().Add("segment", segments).WriteParquet(Path.Combine(packageDir, SegmentsFile));
        foreach (var source in sources.Sources.OfType<NeighbourSource>())
            source.Neighbours.ToTable().WriteParquet(Path.Combine(packageDir, NeighboursFile(source.Name)));
    }

    /// <summary>
    /// The customer's blended top k (article vocabulary ids with the ranker's score), given this
    /// request's model candidates and the model's score of any article.
    /// </summary>
    public List<BlendedCandidate> Recommend(int customer, IReadOnlyList<Candidate> modelTop, Func<int, ModelScore> modelScore, int k)
    {
        var set = new SourceSet(purchases, sources.Select(s => s ?? new RequestModelSource(ModelCount, modelTop, modelScore)).ToArray());
        return BlendedList.Order(ranker, features, set.Model, customer, set.Union(customer), k);
    }
}
