using TwoTower.Config;

namespace TwoTower.Data;

/// <summary>How a column enters a tower.</summary>
public enum FeatureKind { Embedded, OneHot, Numeric, Raw }

public sealed record Feature(string Column, FeatureKind Kind)
{
    public bool IsCategorical => Kind is FeatureKind.Embedded or FeatureKind.OneHot;
}

/// <summary>The configured features of both towers (features.* in pipeline.yaml).</summary>
public sealed record FeatureSet(string QueryId, string CandidateId, IReadOnlyList<Feature> Query, IReadOnlyList<Feature> Candidate)
{
    public static FeatureSet From(PipelineConfig config)
    {
        IReadOnlyList<Feature> Tower(ConfigSchema.TowerKeys t) =>
        [
            .. config.Get(t.Embedded).Select(c => new Feature(c, FeatureKind.Embedded)),
            .. config.Get(t.OneHot).Select(c => new Feature(c, FeatureKind.OneHot)),
            .. config.Get(t.Numeric).Select(c => new Feature(c, FeatureKind.Numeric)),
            .. config.Get(t.Raw).Select(c => new Feature(c, FeatureKind.Raw)),
        ];
        return new FeatureSet(config.Get(ConfigSchema.QueryTower.Id), config.Get(ConfigSchema.CandidateTower.Id),
            Tower(ConfigSchema.QueryTower), Tower(ConfigSchema.CandidateTower));
    }

    /// <summary>Columns read as strings and encoded with a vocabulary: the two ids and every categorical feature.</summary>
    public IReadOnlyList<string> CategoricalColumns =>
        new[] { QueryId, CandidateId }.Concat(Query.Concat(Candidate).Where(f => f.IsCategorical).Select(f => f.Column))
            .Distinct().ToArray();

    /// <summary>Columns read as numbers.</summary>
    public IReadOnlyList<string> NumericColumns =>
        Query.Concat(Candidate).Where(f => !f.IsCategorical).Select(f => f.Column).Distinct().ToArray();

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
