using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;

namespace TwoTower.Retrieval;

/// <summary>
/// two_tower: the trained model's exact top `count` over the catalogue (every distinct training
/// article). A customer's query is their last training row before the as-of day, with the month
/// features (month_sin, month_cos) of the as-of day: the week being predicted, and (with history
/// features) their last distinct articles before the as-of day. Computed in one
/// batch for the customers it will be asked about; <see cref="Score"/> gives the model's dot
/// product for any (customer, catalogue article), a feature of the blend.
/// </summary>
public sealed class TwoTowerSource : ICandidateSource, IModelScorer
{
    readonly int count, dim;
    readonly Dictionary<int, int> queryOfCustomer = new();
    readonly Dictionary<int, int> rowOfArticle = new();
    readonly float[] queries, articles;
    readonly int[] topArticles;
    readonly float[] topScores;
    /// <summary>With the repeat bias: the bias and each customer's history as catalogue rows (−1 empty); else empty.</summary>
    readonly float[] repeatBias = [];
    readonly int[] historyRows = [];

    /// <param name="lastRow">Each customer's last training row before the as-of day (−1: none), see <see cref="SourceSet.LastRows"/>.</param>
    public TwoTowerSource(TwoTowerModel model, IKernels kernels, TrainingColumns train, FeatureSet features, Purchases purchases,
        int[] lastRow, IReadOnlyList<int> customers, int count)
    {
        dim = model.Query.OutputDim;
        var trainArticles = train.Ints[features.CandidateId];
        var catalogueRows = Catalogue.Rows(trainArticles);
        this.count = Math.Min(count, catalogueRows.Length);
        for (var i = 0; i < catalogueRows.Length; i++)
            rowOfArticle[trainArticles[catalogueRows[i]]] = i;
        articles = TwoTowerModel.Embed(model.Candidate, kernels, train, catalogueRows);

        var queryColumns = QueryRows(train, features, purchases, lastRow, customers);
        for (var i = 0; i < customers.Count; i++)
            queryOfCustomer[customers[i]] = i;
        queries = TwoTowerModel.Embed(model.Query, kernels, queryColumns, Enumerable.Range(0, customers.Count).ToArray());
        if (model.RepeatBias is { } bias)
        {
            repeatBias = bias.Value;
            historyRows = queryColumns.Ints[PurchaseHistory.Column].Select(a => a < 0 ? -1 : rowOfArticle.GetValueOrDefault(a, -1)).ToArray();
        }
        // The repeat bias reranks the dot products' top count + the most distinct history articles of a customer (exact, see RepeatScores.Rerank).
        var ask = Math.Min(catalogueRows.Length, this.count + RepeatScores.MostArticles(historyRows, customers.Count, repeatBias.Length));
        var (top, scores) = kernels.TopK(queries, customers.Count, articles, catalogueRows.Length, dim, ask);
        (topArticles, topScores) = (new int[customers.Count * this.count], new float[customers.Count * this.count]);
        for (var q = 0; q < customers.Count; q++)
        {
            var hits = Enumerable.Range(q * ask, ask).Select(r => (top[r], scores[r]));
            var best = repeatBias.Length == 0 ? hits.Take(this.count).ToList()
                : RepeatScores.Rerank(hits, historyRows.AsSpan(q * repeatBias.Length, repeatBias.Length), repeatBias,
                    queries.AsSpan(q * dim, dim), articles, dim, this.count);
            for (var r = 0; r < this.count; r++)
                (topArticles[q * this.count + r], topScores[q * this.count + r]) = (trainArticles[catalogueRows[best[r].Item1]], best[r].Item2);
        }
    }

    public const string SourceName = "two_tower";
    public string Name => SourceName;
    public int Count => count;

    /// <summary>Each customer's last training row before the as-of day, the month features set to the as-of day's month, the history as of that day.</summary>
    static TrainingColumns QueryRows(TrainingColumns train, FeatureSet features, Purchases purchases, int[] lastRow, IReadOnlyList<int> customers)
    {
        var rows = customers.Select(c => lastRow[c]).ToArray();
        var month = DateOnly.FromDayNumber(purchases.AsOfDay).Month;
        var ints = features.Query.Where(f => f.IsCategorical).Select(f => f.Column).Append(features.QueryId).Distinct()
            .ToDictionary(c => c, c => rows.Select((r, i) => c == features.QueryId ? customers[i] : r < 0 ? 0 : train.Ints[c][r]).ToArray());
        if (features.History is { Length: var length, Distinct: var distinct })
            ints[PurchaseHistory.Column] = purchases.LatestArticles(customers, length, distinct);
        var floats = features.Query.Where(f => f.Kind is FeatureKind.Numeric or FeatureKind.Raw).Select(f => f.Column).Distinct().ToDictionary(c => c, c => c switch
        {
            "month_sin" => rows.Select(_ => MonthEncoding.Sin[month]).ToArray(),
            "month_cos" => rows.Select(_ => MonthEncoding.Cos[month]).ToArray(),
            // A customer without a row takes the normalized mean, 0.
            _ => rows.Select(r => r < 0 ? 0f : train.Floats[c][r]).ToArray(),
        });
        return new TrainingColumns(customers.Count, ints, floats);
    }

    public void Candidates(int customer, List<Candidate> output)
    {
        output.Clear();
        if (!queryOfCustomer.TryGetValue(customer, out var q))
            return;
        for (var r = 0; r < count; r++)
            output.Add(new Candidate(topArticles[q * count + r], topScores[q * count + r]));
    }

    /// <summary>The model's score (q·c, plus the repeat bias) for a prepared customer and a catalogue article; <see cref="ModelScore.None"/> otherwise.</summary>
    public ModelScore Score(int customer, int article)
    {
        if (!queryOfCustomer.TryGetValue(customer, out var q) || !rowOfArticle.TryGetValue(article, out var a))
            return ModelScore.None;
        return RepeatScores.Score(queries.AsSpan(q * dim, dim), articles, dim, a, historyRows.AsSpan(q * repeatBias.Length, repeatBias.Length), repeatBias);
    }
}
