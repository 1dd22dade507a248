using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Cloud.Unum.USearch;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;
using TwoTower.Model;

namespace TwoTower.Serving;

/// <param name="Sources">The candidate sources that proposed the article ("two_tower" for the model's own list).</param>
public sealed record Recommendation(string ArticleId, float Score, IReadOnlyList<string> Sources, IReadOnlyDictionary<string, string> Features);

/// <summary>One training purchase of a customer: its date (null for data without dates), the article and its item features.</summary>
public sealed record Purchase(string? Date, string ArticleId, IReadOnlyDictionary<string, string> Features);

/// <param name="Total">How many purchases the customer made in training (Latest may hold fewer).</param>
/// <param name="ArticlesBought">Every distinct article they bought.</param>
public sealed record CustomerHistory(int Total, IReadOnlyList<Purchase> Latest, IReadOnlyList<string> ArticlesBought);

/// <param name="Source">"blend" (the ranked union of the candidate sources) or "model" (the two-tower model alone).</param>
public sealed record RecommendResult(string CustomerId, bool KnownCustomer, string Source, IReadOnlyList<Recommendation> Items);

/// <summary>
/// Serving from a package folder alone (artifacts/package): the query tower, the candidate
/// embeddings and the inner-product index. Recommend(customer features, k) embeds the query and
/// returns the top k articles, through the index or by exact scoring of the whole catalogue;
/// RecommendMany does the same for many customers at once (exact, in batches: RecommendAll).
/// A feature the request leaves out is the customer's own as of the end of training (customers.parquet)
/// when the package knows the customer, else the training mean (numbers) or unknown (categories).
/// Thread-safe: each request in flight embeds with a query tower of its own; index searches are
/// serialized (microseconds each; concurrent searches through USearch's .NET binding failed under load).
/// </summary>
public sealed class Recommender : IDisposable
{
    readonly IKernels kernels = new SimdKernels(1);
    readonly Tower queryWeights;
    /// <summary>One-row query towers, one per request in flight, reused (a shared tower under a lock convoyed under load on 2 cores).</summary>
    readonly ConcurrentBag<DeviceTower> queryTowers = [];
    readonly FeatureSet features;
    readonly Dictionary<string, Vocabulary> vocabularies;
    readonly Dictionary<string, NormalizationStats> normalization;
    readonly USearchIndex index;
    readonly object indexLock = new();
    /// <summary>The model's repeat bias (one per history slot), or empty: a history article's score adds its slot's bias.</summary>
    readonly float[] repeatBias;

    /// <summary>The model's repeat bias by history slot (most recent first), or null when the model has none.</summary>
    public IReadOnlyList<float>? RepeatBias => repeatBias.Length == 0 ? null : repeatBias;

    /// <summary>Candidate embeddings, row i for article ArticleIds[i].</summary>
    public float[] Embeddings { get; }
    public string[] ArticleIds { get; }
    public int Dim { get; }
    /// <summary>Each catalogue row's item features (decoded), built once: every list that returns the row shares it.</summary>
    readonly IReadOnlyDictionary<string, string>[] articleFeatures;
    /// <summary>Each customer's distinct training articles as catalogue rows: boughtRows[boughtStart[c]..boughtStart[c + 1]] for customer vocabulary id c.</summary>
    readonly int[] boughtStart, boughtRows;
    readonly Dictionary<string, int> packagedCustomer;
    readonly ColumnTable packagedFeatures;
    /// <summary>customers.parquet's history slots (history_0 …), looked up once: a table finds a column by a linear search of its names, per slot and request.</summary>
    readonly int[][] packagedHistory;
    readonly PackagedBlend? blend;
    /// <summary>Article vocabulary id of each catalogue row, and back.</summary>
    readonly int[] articleIdOfRow;
    /// <summary>The catalogue row of each article vocabulary id, −1 for an id without one (an array: the blend looks up every candidate).</summary>
    readonly int[] rowOfArticleId;

    /// <summary>The known customer ids in ordinal order (suggestions by prefix).</summary>
    readonly string[] sortedCustomerIds;

    /// <summary>The package folder (the model card and its plots are read from it).</summary>
    public string PackageDir { get; }

    /// <summary>How many customers the package knows (training customers).</summary>
    public int CustomerCount => sortedCustomerIds.Length;

    /// <summary>The first and last training day with purchases, for data with dates; else null.</summary>
    public (DateOnly First, DateOnly Last)? TrainingPeriod =>
        blend == null ? null : (DateOnly.FromDayNumber(blend.Purchases.Days.Min()), DateOnly.FromDayNumber(blend.AsOfDay - 1));

    /// <summary>The query id column (customer_id): its vocabulary lists the known customers.</summary>
    public string CustomerIdColumn => features.QueryId;

    /// <summary>The month after the last training day (the week being predicted), for data with purchase dates; else null.</summary>
    public int? PredictionMonth => blend == null ? null : DateOnly.FromDayNumber(blend.AsOfDay).Month;

    /// <summary>Whether the package holds a blend (the default list); without one every list is the model's.</summary>
    public bool HasBlend => blend != null;

    public Recommender(string packageDir)
    {
        PackageDir = packageDir;
        string File(string name) => Path.Combine(packageDir, name);
        if (!Directory.Exists(packageDir) || !System.IO.File.Exists(File(PackageLayout.ManifestFile)))
            throw new PipelineError($"no package at {packageDir} (run --target=Package first)");
        PackageLayout.CheckFormat(packageDir);
        var config = PipelineConfig.Parse(System.IO.File.ReadAllText(File("config.yaml")), File("config.yaml"));
        features = FeatureSet.From(config);
        vocabularies = features.CategoricalColumns.ToDictionary(c => c, c => Vocabulary.Read(packageDir, c));
        normalization = NormalizationStats.ReadAll(packageDir);
        var model = TwoTowerModel.Create(config, vocabularies.ToDictionary(v => v.Key, v => v.Value.Count));
        model.LoadWeights(File(TrainedModel.WeightsFile));
        queryWeights = model.Query;
        repeatBias = model.RepeatBias?.Value ?? [];
        Dim = model.Candidate.OutputDim;

        var candidates = ColumnTable.ReadParquet(File(PackageLayout.CandidatesFile));
        ArticleIds = candidates.Strings(features.CandidateId);
        Embeddings = new float[ArticleIds.Length * Dim];
        for (var d = 0; d < Dim; d++)
        {
            var column = candidates.Floats($"e{d}");
            for (var i = 0; i < ArticleIds.Length; i++)
                Embeddings[i * Dim + d] = column[i];
        }
        var featureColumns = candidates.Names.Where(n => n != features.CandidateId && candidates.Column(n) is string[])
            .Select(n => (Name: n, Values: candidates.Strings(n))).ToArray();
        articleFeatures = Enumerable.Range(0, ArticleIds.Length)
            .Select(row => (IReadOnlyDictionary<string, string>)featureColumns.ToDictionary(f => f.Name, f => f.Values[row])).ToArray();
        index = new USearchIndex(File(PackageLayout.IndexFile));
        articleIdOfRow = ArticleIds.Select(id => vocabularies[features.CandidateId][id]).ToArray();
        rowOfArticleId = Enumerable.Repeat(-1, vocabularies[features.CandidateId].Count + 1).ToArray();
        for (var row = 0; row < articleIdOfRow.Length; row++)
            rowOfArticleId[articleIdOfRow[row]] = row;
        blend = PackagedBlend.Load(packageDir, config, vocabularies[features.QueryId].Count + 1, vocabularies[features.CandidateId].Count + 1);

        packagedFeatures = ColumnTable.ReadParquet(File(PackageLayout.CustomersFile));
        packagedHistory = [.. Enumerable.Range(0, features.History?.Length ?? 0).Select(j => packagedFeatures.Ints(PurchaseHistory.SlotColumn(j)))];
        packagedCustomer = packagedFeatures.Strings(features.QueryId).Select((id, row) => (id, row)).ToDictionary(x => x.id, x => x.row);

        sortedCustomerIds = [.. vocabularies[features.QueryId].Values.Order(StringComparer.Ordinal)];
        var plots = File(PackageLayout.PlotsFolder);
        PlotNames = Directory.Exists(plots) ? Directory.GetFiles(plots, "*.png").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList() : [];
        var history = ColumnTable.ReadParquet(File(PackageLayout.HistoryFile));
        boughtRows = history.Ints(PackageLayout.HistoryArticleRowColumn);
        boughtStart = new int[vocabularies[features.QueryId].Count + 2];
        foreach (var c in history.Ints(PackageLayout.HistoryCustomerColumn))   // sorted by customer
            boughtStart[c + 1]++;
        for (var c = 1; c < boughtStart.Length; c++)
            boughtStart[c] += boughtStart[c - 1];
    }

    /// <summary>Up to `limit` known customer ids that start with `prefix`, in ordinal order.</summary>
    public IReadOnlyList<string> CustomerIdsStartingWith(string prefix, int limit)
    {
        var at = Array.BinarySearch(sortedCustomerIds, prefix, StringComparer.Ordinal);
        var result = new List<string>();
        for (var i = at >= 0 ? at : ~at; i < sortedCustomerIds.Length && result.Count < limit && sortedCustomerIds[i].StartsWith(prefix, StringComparison.Ordinal); i++)
            result.Add(sortedCustomerIds[i]);
        return result;
    }

    /// <summary>
    /// The customer's training purchases, the latest `limit` newest first: with dates from the blend's
    /// purchases where the package has them, else each distinct article once, undated. Null for a
    /// customer the package does not know.
    /// </summary>
    public CustomerHistory? History(string customerId, int limit)
    {
        var c = vocabularies[features.QueryId][customerId];
        if (c == Vocabulary.OutOfVocabulary)
            return null;
        var rows = BoughtRows(c);
        var bought = rows.Select(row => ArticleIds[row]).ToList();
        if (blend == null)
            return new CustomerHistory(bought.Count, rows.Take(limit).Select(row => new Purchase(null, ArticleIds[row], articleFeatures[row])).ToList(), bought);
        var articles = blend.Purchases.ArticlesOf(c);
        var days = blend.Purchases.DaysOf(c);
        var latest = new List<Purchase>();
        for (var i = articles.Length - 1; i >= 0 && latest.Count < limit; i--)
        {
            if (rowOfArticleId[articles[i]] is var row and >= 0)
                latest.Add(new Purchase(DateOnly.FromDayNumber(days[i]).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), ArticleIds[row], articleFeatures[row]));
        }
        return new CustomerHistory(articles.Length, latest, bought);
    }

    /// <summary>The evaluation plots the package holds (file names under plots/).</summary>
    public IReadOnlyList<string> PlotNames { get; }

    /// <summary>Customer vocabulary id c's distinct training articles, as catalogue rows.</summary>
    int[] BoughtRows(int c) => boughtRows[boughtStart[c]..boughtStart[c + 1]];

    /// <summary>
    /// What a list leaves out when `excludeBought` (catalogue rows): the customer's training articles
    /// and the articles the request passes as "history" (a new customer's basket); null when nothing is.
    /// </summary>
    HashSet<int>? Bought(string customerId, bool excludeBought, IReadOnlyDictionary<string, string> values)
    {
        if (!excludeBought)
            return null;
        var bought = BoughtRows(vocabularies[features.QueryId][customerId]).ToHashSet();
        if (features.History != null && values.TryGetValue(PurchaseHistory.Column, out var text))
            bought.UnionWith(RequestedHistory(text).Select(a => rowOfArticleId[a]).Where(row => row >= 0));
        return bought.Count > 0 ? bought : null;
    }

    /// <summary>
    /// Top k articles for a customer: the blend by default (when the package has one), the model
    /// alone with modelOnly. values: raw values of the query features by column (a feature left out
    /// is the customer's packaged one, else the training mean or unknown; "month" 1..12 supplies
    /// month_sin and month_cos; with history features, "history": recent article ids, most recent
    /// first, comma-separated, in place of the packaged ones). An unknown customer id gets the
    /// out-of-vocabulary embedding (and, in the blend, the sources that need no history). exact: the
    /// model's candidates by exact scoring instead of the index.
    /// </summary>
    public RecommendResult Recommend(string customerId, IReadOnlyDictionary<string, string> values, int k, bool excludeBought, bool exact,
        bool modelOnly = false)
    {
        var (data, knownOne) = QueryColumns([customerId], values);
        var query = Embed(data);
        var history = HistoryRows(data);
        var skip = Bought(customerId, excludeBought, values);
        var ask = ModelCandidatesNeeded(skip, k, modelOnly);
        var dotAsk = Math.Min(ArticleIds.Length, ask + RepeatScores.Articles(history));
        var hits = WithRepeatBias(exact ? ExactTop(query, dotAsk) : IndexTop(query, dotAsk), history, query, ask);
        return Rank(customerId, knownOne[0], query, history, hits, k, skip, modelOnly);
    }

    /// <summary>
    /// <see cref="Recommend"/> with exact scoring for many customers sharing the same request
    /// values (e.g. the month): queries embedded and scored in one batch on `batchKernels`, the
    /// blend's per-customer work in parallel. Each list equals Recommend(..., exact: true)'s.
    /// </summary>
    public RecommendResult[] RecommendMany(IReadOnlyList<string> customerIds, IReadOnlyDictionary<string, string> values, int k, bool excludeBought,
        bool modelOnly, IKernels batchKernels, int threads)
    {
        var count = customerIds.Count;
        var (columns, known) = QueryColumns(customerIds, values);
        var queries = TwoTowerModel.Embed(queryWeights, batchKernels, columns, Enumerable.Range(0, count).ToArray());
        var history = HistoryRows(columns);
        var skips = customerIds.Select(c => Bought(c, excludeBought, values)).ToArray();
        var ask = count == 0 ? 0 : skips.Max(skip => ModelCandidatesNeeded(skip, k, modelOnly));
        var dotAsk = Math.Min(ArticleIds.Length, ask + RepeatScores.MostArticles(history, count, repeatBias.Length));
        var (top, scores) = batchKernels.TopK(queries, count, Embeddings, ArticleIds.Length, Dim, dotAsk);
        var results = new RecommendResult[count];
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            var query = queries.AsSpan(i * Dim, Dim).ToArray();
            var customerHistory = history.AsSpan(i * repeatBias.Length, repeatBias.Length).ToArray();
            var hits = WithRepeatBias(Enumerable.Range(i * dotAsk, dotAsk).Select(r => new Hit(top[r], scores[r])).ToList(), customerHistory, query, ask);
            results[i] = Rank(customerIds[i], known[i], query, customerHistory, hits, k, skips[i], modelOnly);
        });
        return results;
    }

    /// <summary>
    /// The model's top `ask` from the dot products' top (ask + the history's distinct articles) and the customer's
    /// history, with the repeat bias (exact, see <see cref="RepeatScores.Rerank"/>); without one, the dot products' top.
    /// </summary>
    List<Hit> WithRepeatBias(List<Hit> dotTop, int[] history, float[] query, int ask) =>
        repeatBias.Length == 0 ? dotTop
            : RepeatScores.Rerank(dotTop.Select(h => (h.Row, h.Score)), history, repeatBias, query, Embeddings, Dim, ask)
                .Select(h => new Hit(h.Row, h.Score)).ToList();

    /// <summary>With the repeat bias, each query row's history as catalogue rows (−1 empty); else empty.</summary>
    int[] HistoryRows(TrainingColumns columns) =>
        repeatBias.Length == 0 ? [] : columns.Ints[PurchaseHistory.Column].Select(a => a < 0 ? -1 : rowOfArticleId[a]).ToArray();

    /// <summary>How many of the model's candidates a list needs: k plus the articles it leaves out (model alone), or the blend's two-tower count.</summary>
    int ModelCandidatesNeeded(HashSet<int>? skip, int k, bool modelOnly) =>
        Math.Min(ArticleIds.Length, blend != null && !modelOnly ? blend.ModelCount : k + (skip?.Count ?? 0));

    /// <summary>
    /// The customer's list from their query and the model's candidates for it (best first): the model's alone, or the blend's;
    /// without the articles of `skip` (<see cref="Bought"/>).
    /// </summary>
    RecommendResult Rank(string customerId, bool known, float[] query, int[] history, IReadOnlyList<Hit> modelHits, int k, HashSet<int>? skip,
        bool modelOnly)
    {
        var want = Math.Min(k, ArticleIds.Length - (skip?.Count ?? 0));
        if (blend == null || modelOnly)
        {
            var items = modelHits.Where(h => skip == null || !skip.Contains(h.Row)).Take(want).Select(h => Item(h.Row, h.Score, ModelOnly));
            return new RecommendResult(customerId, known, "model", items.ToList());
        }
        var modelTop = modelHits.Select(h => new Retrieval.Candidate(articleIdOfRow[h.Row], h.Score)).ToList();
        ModelScore Score(int article) =>
            rowOfArticleId[article] is var row and >= 0 ? RepeatScores.Score(query, Embeddings, Dim, row, history, repeatBias) : ModelScore.None;
        var customer = vocabularies[features.QueryId][customerId];
        var blended = blend.Recommend(customer, modelTop, Score, want + (skip?.Count ?? 0))
            .Select(c => (Row: rowOfArticleId[c.Article], c.Score, c.Union)).Where(c => skip == null || !skip.Contains(c.Row)).Take(want)
            .Select(c => Item(c.Row, c.Score, blend.SourceNames.Where((_, s) => !float.IsNaN(c.Union.Ranks[s])).ToArray()));
        return new RecommendResult(customerId, known, "blend", blended.ToList());
    }

    static readonly string[] ModelOnly = [Retrieval.TwoTowerSource.SourceName];

    Recommendation Item(int row, float score, IReadOnlyList<string> sources) =>
        new(ArticleIds[row], score, sources, articleFeatures[row]);

    /// <summary>month_sin and month_cos: features of the request's date ("month"), not of the customer.</summary>
    public static bool IsRequestMonth(string column) => column is "month_sin" or "month_cos";

    public float[] EmbedQuery(string customerId, IReadOnlyDictionary<string, string> values, out bool known)
    {
        var (data, knownOne) = QueryColumns([customerId], values);
        known = knownOne[0];
        return Embed(data);
    }

    /// <summary>The query of one row of query columns, on a one-row tower of this request's own.</summary>
    float[] Embed(TrainingColumns data)
    {
        if (!queryTowers.TryTake(out var tower))
            tower = new DeviceTower(kernels, queryWeights, capacity: 1, trainingFromStep: null);
        try
        {
            return tower.Embed(data, [0]);
        }
        finally
        {
            queryTowers.Add(tower);
        }
    }

    /// <summary>The query tower's input columns for the customers, one row each, and whether each is known.</summary>
    (TrainingColumns Columns, bool[] Known) QueryColumns(IReadOnlyList<string> customerIds, IReadOnlyDictionary<string, string> values)
    {
        if (features.History == null && values.ContainsKey(PurchaseHistory.Column))
            throw new ArgumentException("'history' needs a model with history features (features.query.history.length > 0); this package's has none");
        var count = customerIds.Count;
        var known = customerIds.Select(c => vocabularies[features.QueryId][c] != Vocabulary.OutOfVocabulary).ToArray();
        var packagedRow = customerIds.Select(c => packagedCustomer.GetValueOrDefault(c, -1)).ToArray();
        var ints = new Dictionary<string, int[]>();
        var floats = new Dictionary<string, float[]>();
        foreach (var f in features.Query)
        {
            if (f.Kind == FeatureKind.History)
            {
                ints[PurchaseHistory.Column] = HistoryColumn(values, packagedRow);
                continue;
            }
            var stored = packagedFeatures.Names.Contains(f.Column) ? packagedFeatures.Column(f.Column) : null;
            if (f.IsCategorical)
            {
                var ids = new int[count];
                for (var i = 0; i < count; i++)
                    ids[i] = f.Column == features.QueryId ? vocabularies[f.Column][customerIds[i]]
                        : values.TryGetValue(f.Column, out var value) ? vocabularies[f.Column][value]
                        : stored is int[] packaged && packagedRow[i] >= 0 ? packaged[packagedRow[i]]
                        : vocabularies[f.Column][""];
                ints[f.Column] = ids;
                continue;
            }
            var requested = RequestedNumber(f.Column, values);
            var stats = normalization.GetValueOrDefault(f.Column);
            var normalizedRequest = stats != null ? stats.Apply([requested])[0] : requested;
            var column = new float[count];
            for (var i = 0; i < count; i++)
                column[i] = float.IsNaN(requested) && stored is float[] packaged && packagedRow[i] >= 0 ? packaged[packagedRow[i]] : normalizedRequest;
            floats[f.Column] = column;
        }
        return (new TrainingColumns(count, ints, floats), known);
    }

    /// <summary>
    /// The history input of each customer (rows × length): the request's "history" (article ids,
    /// most recent first, comma-separated; ids the catalogue does not know are skipped) when given,
    /// else the packaged history as of the end of training, else none.
    /// </summary>
    int[] HistoryColumn(IReadOnlyDictionary<string, string> values, int[] packagedRow)
    {
        var length = features.History!.Length;
        var history = new int[packagedRow.Length * length];
        history.AsSpan().Fill(-1);
        if (values.TryGetValue(PurchaseHistory.Column, out var text))
        {
            var requested = RequestedHistory(text);
            for (var i = 0; i < packagedRow.Length; i++)
                requested.CopyTo(history, i * length);
            return history;
        }
        for (var j = 0; j < length; j++)
        {
            var slot = packagedHistory[j];
            for (var i = 0; i < packagedRow.Length; i++)
                history[i * length + j] = packagedRow[i] >= 0 ? slot[packagedRow[i]] : -1;
        }
        return history;
    }

    /// <summary>
    /// A request's "history" as the history input holds it: article vocabulary ids, most recent first
    /// (comma-separated ids; those the catalogue does not know are skipped; distinct when the model's
    /// history is), at most the history's length.
    /// </summary>
    int[] RequestedHistory(string text)
    {
        var articles = vocabularies[features.CandidateId];
        var requested = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(id => articles[id]).Where(id => id != Vocabulary.OutOfVocabulary);
        return [.. (features.History!.Distinct ? requested.Distinct() : requested).Take(features.History.Length)];
    }

    /// <summary>A numeric feature's raw value from the request (NaN when it is left out); "month" 1..12 gives month_sin and month_cos.</summary>
    static float RequestedNumber(string column, IReadOnlyDictionary<string, string> values)
    {
        if (values.TryGetValue(column, out var text) && text.Length > 0)
        {
            if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var raw) || !float.IsFinite(raw))
                throw new ArgumentException($"'{column}' must be a number; got '{text}'");
            return raw;
        }
        if (IsRequestMonth(column) && values.TryGetValue("month", out var monthText))
        {
            if (!int.TryParse(monthText, out var month) || month is < 1 or > 12)
                throw new ArgumentException($"'month' must be an integer 1..12; got '{monthText}'");
            return column == "month_sin" ? MonthEncoding.Sin[month] : MonthEncoding.Cos[month];
        }
        return float.NaN;
    }

    readonly record struct Hit(int Row, float Score);

    /// <summary>The model's exact top `ask` rows for the query, best first.</summary>
    List<Hit> ExactTop(float[] query, int ask)
    {
        var (indices, scores) = kernels.TopK(query, 1, Embeddings, ArticleIds.Length, Dim, ask);
        return indices.Zip(scores, (row, score) => new Hit(row, score)).ToList();
    }

    /// <summary>The index's top `ask` rows for the query (approximate), each with its exact score.</summary>
    List<Hit> IndexTop(float[] query, int ask)
    {
        if (ask == 0)
            return [];
        ulong[] keys;
        int found;
        lock (indexLock)
            found = index.Search(MaximumInnerProduct.Query(query), ask, out keys, out _);
        return keys.Take(found).Select(key => new Hit((int)key, SimdKernels.ScoreDot(query, Embeddings.AsSpan((int)key * Dim, Dim)))).ToList();
    }

    /// <summary>Top k rows by the index alone (recall measurement and benchmarks).</summary>
    public ulong[] IndexSearch(float[] query, int k)
    {
        lock (indexLock)
        {
            index.Search(MaximumInnerProduct.Query(query), k, out var keys, out _);
            return keys;
        }
    }


    public void Dispose()
    {
        index.Dispose();
        foreach (var tower in queryTowers)
            tower.Dispose();
    }
}
