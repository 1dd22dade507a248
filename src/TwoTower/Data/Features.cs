using TwoTower.Config;

namespace TwoTower.Data;

/// <summary>How a column enters a tower. History: the customer's recent articles, embedded and pooled (<see cref="PurchaseHistory"/>).</summary>
public enum FeatureKind { Embedded, OneHot, Numeric, Raw, History }

public sealed record Feature(string Column, FeatureKind Kind)
{
    public bool IsCategorical => Kind is FeatureKind.Embedded or FeatureKind.OneHot;
}

/// <summary>
/// features.query.history: how many recent articles, their pooling weights, and whether they are
/// embedded with the candidate tower's table of the candidate id (shared) or a table of their own.
/// </summary>
/// <param name="RepeatBias">Whether the model adds a learned bias per slot to the score of the history's articles (<see cref="Model.TwoTowerModel.RepeatBias"/>).</param>
/// <param name="Distinct">The last Length distinct articles (true), or the last Length purchases, repeats kept.</param>
public sealed record HistorySpec(int Length, bool Recency, bool ShareEmbedding, bool RepeatBias = false, bool Distinct = true)
{
    public float[] SlotWeights => PurchaseHistory.SlotWeights(Length, Recency);
}

/// <summary>The configured features of both towers (features.* in pipeline.yaml).</summary>
public sealed record FeatureSet(string QueryId, string CandidateId, IReadOnlyList<Feature> Query, IReadOnlyList<Feature> Candidate)
{
    /// <summary>The query tower's history input, or null (features.query.history.length 0).</summary>
    public HistorySpec? History { get; init; }

    public static FeatureSet From(PipelineConfig config)
    {
        IReadOnlyList<Feature> Tower(ConfigSchema.TowerKeys t) =>
        [
            .. config.Get(t.Embedded).Select(c => new Feature(c, FeatureKind.Embedded)),
            .. config.Get(t.OneHot).Select(c => new Feature(c, FeatureKind.OneHot)),
            .. config.Get(t.Numeric).Select(c => new Feature(c, FeatureKind.Numeric)),
            .. config.Get(t.Raw).Select(c => new Feature(c, FeatureKind.Raw)),
        ];
        var length = (int)config.Get(ConfigSchema.FeaturesHistory.Length);
        var history = length == 0 ? null
            : new HistorySpec(length, config.Get(ConfigSchema.FeaturesHistory.Pooling) == "recency", config.Get(ConfigSchema.FeaturesHistory.ShareEmbedding),
                config.Get(ConfigSchema.FeaturesHistory.RepeatBias), config.Get(ConfigSchema.FeaturesHistory.Distinct));
        IReadOnlyList<Feature> query = Tower(ConfigSchema.QueryTower);
        if (history != null)
            query = [.. query, new Feature(PurchaseHistory.Column, FeatureKind.History)];
        return new FeatureSet(config.Get(ConfigSchema.QueryTower.Id), config.Get(ConfigSchema.CandidateTower.Id), query, Tower(ConfigSchema.CandidateTower))
        {
            History = history,
        };
    }

    /// <summary>Columns read as strings and encoded with a vocabulary: the two ids and every categorical feature.</summary>
    public IReadOnlyList<string> CategoricalColumns =>
        new[] { QueryId, CandidateId }.Concat(Query.Concat(Candidate).Where(f => f.IsCategorical).Select(f => f.Column))
            .Distinct().ToArray();

    /// <summary>Columns read as numbers.</summary>
    public IReadOnlyList<string> NumericColumns =>
        Query.Concat(Candidate).Where(f => f.Kind is FeatureKind.Numeric or FeatureKind.Raw).Select(f => f.Column).Distinct().ToArray();

    /// <summary>Numeric columns that are normalized (the others pass through).</summary>
    public IReadOnlyList<string> NormalizedColumns =>
        Query.Concat(Candidate).Where(f => f.Kind == FeatureKind.Numeric).Select(f => f.Column).Distinct().ToArray();
}

/// <summary>
/// The notebook's cyclic month encoding: month m (1..12) as the point at angle 2πm/12 on the unit
/// circle, so December and January are neighbours. One table for the generator, raw ingest and serving.
/// </summary>
public static class MonthEncoding
{
    /// <summary>sin(2πm/12), indexed by month 0..12.</summary>
    public static readonly float[] Sin = Enumerable.Range(0, 13).Select(m => (float)Math.Sin(2 * Math.PI * m / 12)).ToArray();

    /// <summary>cos(2πm/12), indexed by month 0..12.</summary>
    public static readonly float[] Cos = Enumerable.Range(0, 13).Select(m => (float)Math.Cos(2 * Math.PI * m / 12)).ToArray();
}
