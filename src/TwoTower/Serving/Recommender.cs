using System.Globalization;
using System.Text.Json;
using Cloud.Unum.USearch;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;
using TwoTower.Model;

namespace TwoTower.Serving;

public sealed record Recommendation(string ArticleId, float Score, IReadOnlyDictionary<string, string> Features);

/// <param name="Source">"blend" (the ranked union of the candidate sources) or "model" (the two-tower model alone).</param>
public sealed record RecommendResult(string CustomerId, bool KnownCustomer, string Source, IReadOnlyList<Recommendation> Items);

/// <summary>
/// Serving from a package folder alone (artifacts/package): the query tower, the candidate
/// embeddings and the inner-product index. Recommend(customer features, k) embeds the query and
/// returns the top k articles, through the index or by exact scoring of the whole catalogue.
/// Thread-safe: the query tower's forward pass and the index search are serialized (microseconds
/// each; concurrent searches through USearch's .NET binding failed under load).
/// </summary>
public sealed class Recommender : IDisposable
{
    readonly IKernels kernels = new SimdKernels(1);
    readonly DeviceTower queryTower;
    readonly FeatureSet features;
    readonly Dictionary<string, Vocabulary> vocabularies;
    readonly Dictionary<string, NormalizationStats> normalization;
    readonly USearchIndex index;
    readonly object forwardLock = new();
    readonly object indexLock = new();

    /// <summary>Candidate embeddings, row i for article ArticleIds[i].</summary>
    public float[] Embeddings { get; }
    public string[] ArticleIds { get; }
    public int Dim { get; }
    readonly Dictionary<string, string[]> articleFeatures;
    readonly Dictionary<string, HashSet<int>> bought;
    readonly PackagedBlend? blend;
    /// <summary>Article vocabulary id of each catalogue row, and back.</summary>
    readonly int[] articleIdOfRow;
    readonly Dictionary<int, int> rowOfArticleId;

    /// <summary>The query id column (customer_id): its vocabulary lists the known customers.</summary>
    public string CustomerIdColumn => features.QueryId;

    /// <summary>Whether the package holds a blend (the default list); without one every list is the model's.</summary>
    public bool HasBlend => blend != null;

    public Recommender(string packageDir)
    {
        string File(string name) => Path.Combine(packageDir, name);
        if (!Directory.Exists(packageDir) || !System.IO.File.Exists(File(PackageLayout.ManifestFile)))
            throw new PipelineError($"no package at {packageDir} (run --target=Package first)");
        var config = PipelineConfig.Parse(System.IO.File.ReadAllText(File("config.yaml")), File("config.yaml"));
        features = FeatureSet.From(config);
        vocabularies = features.CategoricalColumns.ToDictionary(c => c, c => Vocabulary.Read(packageDir, c));
        normalization = NormalizationStats.ReadAll(packageDir);
        var model = TwoTowerModel.Create(config, vocabularies.ToDictionary(v => v.Key, v => v.Value.Count));
        model.LoadWeights(File(TrainedModel.WeightsFile));
        // One query at a time (under forwardLock): a one-row tower kept for the process.
        queryTower = new DeviceTower(kernels, model.Query, capacity: 1, trainingFromStep: null);
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
        articleFeatures = candidates.Names.Where(n => n != features.CandidateId && candidates.Column(n) is string[])
            .ToDictionary(n => n, candidates.Strings);
        index = new USearchIndex(File(PackageLayout.IndexFile));
        articleIdOfRow = ArticleIds.Select(id => vocabularies[features.CandidateId][id]).ToArray();
        rowOfArticleId = articleIdOfRow.Select((id, row) => (id, row)).ToDictionary(x => x.id, x => x.row);
        blend = PackagedBlend.Load(packageDir, config, vocabularies[features.QueryId].Count + 1, vocabularies[features.CandidateId].Count + 1);

        var history = ColumnTable.ReadParquet(File(PackageLayout.HistoryFile));
        bought = new Dictionary<string, HashSet<int>>();
        var customers = history.Strings(features.QueryId);
        var articles = history.Ints("article_row");
        for (var r = 0; r < customers.Length; r++)
        {
            if (!bought.TryGetValue(customers[r], out var set))
                bought[customers[r]] = set = [];
            set.Add(articles[r]);
        }
    }

    /// <summary>
    /// Top k articles for a customer: the blend by default (when the package has one), the model
    /// alone with modelOnly. values: raw values of the query features by column (a numeric feature
    /// may be absent: it takes the training mean; "month" 1..12 supplies month_sin and month_cos).
    /// An unknown customer id gets the out-of-vocabulary embedding (and, in the blend, the sources
    /// that need no history). exact: the model's candidates by exact scoring instead of the index.
    /// </summary>
    public RecommendResult Recommend(string customerId, IReadOnlyDictionary<string, string> values, int k, bool excludeBought, bool exact,
        bool modelOnly = false)
    {
        var query = EmbedQuery(customerId, values, out var known);
        var skip = excludeBought && bought.TryGetValue(customerId, out var set) ? set : null;
        var want = Math.Min(k, ArticleIds.Length - (skip?.Count ?? 0));
        if (blend == null || modelOnly)
        {
            var hits = exact ? ExactTop(query, want, skip) : IndexTop(query, want, skip);
            return new RecommendResult(customerId, known, "model", hits.Select(h => Item(h.Row, h.Score)).ToList());
        }
        var modelTop = blend.ModelCount == 0 ? []
            : (exact ? ExactTop(query, blend.ModelCount, null) : IndexTop(query, blend.ModelCount, null))
            .Select(h => new Retrieval.Candidate(articleIdOfRow[h.Row], h.Score)).ToList();
        float ModelScore(int article) =>
            rowOfArticleId.TryGetValue(article, out var row) ? SimdKernels.ScoreDot(query, Embeddings.AsSpan(row * Dim, Dim)) : float.NaN;
        var customer = vocabularies[features.QueryId][customerId];
        var blended = blend.Recommend(customer, modelTop, ModelScore, want + (skip?.Count ?? 0))
            .Select(c => (Row: rowOfArticleId[c.Article], c.Score)).Where(c => skip == null || !skip.Contains(c.Row)).Take(want);
        return new RecommendResult(customerId, known, "blend", blended.Select(c => Item(c.Row, c.Score)).ToList());
    }

    Recommendation Item(int row, float score) => new(ArticleIds[row], score, articleFeatures.ToDictionary(f => f.Key, f => f.Value[row]));

    public float[] EmbedQuery(string customerId, IReadOnlyDictionary<string, string> values, out bool known)
    {
        var ints = new Dictionary<string, int[]>();
        var floats = new Dictionary<string, float[]>();
        known = vocabularies[features.QueryId][customerId] != Vocabulary.OutOfVocabulary;
        foreach (var f in features.Query)
        {
            if (f.IsCategorical)
            {
                var value = f.Column == features.QueryId ? customerId : values.GetValueOrDefault(f.Column, "");
                ints[f.Column] = [vocabularies[f.Column][value]];
                continue;
            }
            var raw = float.NaN;
            if (values.TryGetValue(f.Column, out var text) && text.Length > 0)
            {
                if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out raw) || !float.IsFinite(raw))
                    throw new ArgumentException($"'{f.Column}' must be a number; got '{text}'");
            }
            else if (f.Column is "month_sin" or "month_cos" && values.TryGetValue("month", out var monthText))
            {
                if (!int.TryParse(monthText, out var month) || month is < 1 or > 12)
                    throw new ArgumentException($"'month' must be an integer 1..12; got '{monthText}'");
                raw = f.Column == "month_sin" ? MonthEncoding.Sin[month] : MonthEncoding.Cos[month];
            }
            floats[f.Column] = normalization.TryGetValue(f.Column, out var stats) ? stats.Apply([raw]) : [raw];
        }
        var data = new TrainingColumns(1, ints, floats);
        lock (forwardLock)
            return queryTower.Embed(data, [0]);
    }

    readonly record struct Hit(int Row, float Score);

    IEnumerable<Hit> ExactTop(float[] query, int k, HashSet<int>? skip)
    {
        var ask = Math.Min(ArticleIds.Length, k + (skip?.Count ?? 0));
        var (indices, scores) = (new int[ask], new float[ask]);
        using (var q = kernels.Upload(query))
        using (var candidates = kernels.Upload(Embeddings))
        using (var i = kernels.Upload(indices))
        using (var s = kernels.Upload(scores))
            kernels.TopK(q, 1, candidates, ArticleIds.Length, Dim, ask, i, s);
        return indices.Zip(scores, (row, score) => new Hit(row, score)).Where(h => skip == null || !skip.Contains(h.Row)).Take(k);
    }

    IEnumerable<Hit> IndexTop(float[] query, int k, HashSet<int>? skip)
    {
        var ask = Math.Min(ArticleIds.Length, k + (skip?.Count ?? 0));
        ulong[] keys;
        int found;
        lock (indexLock)
            found = index.Search(MaximumInnerProduct.Query(query), ask, out keys, out _);
        var hits = new List<Hit>(k);
        for (var i = 0; i < found && hits.Count < k; i++)
        {
            var row = (int)keys[i];
            if (skip == null || !skip.Contains(row))
                hits.Add(new Hit(row, SimdKernels.ScoreDot(query, Embeddings.AsSpan(row * Dim, Dim))));
        }
        return hits;
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
        queryTower.Dispose();
    }
}
