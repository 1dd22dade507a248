using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Retrieval;

/// <summary>What the Blend stage leaves in artifacts/blend/, and the blended lists built back from it as of the end of training.</summary>
public static class BlendArtifacts
{
    public const string RankerFile = "ranker.zip";
    public const string SummaryFile = "blend.json";

    /// <summary>The training columns' customers, articles and days, and the vocabulary sizes: what <see cref="Purchases"/> is built from.</summary>
    public sealed record Columns(int[] Customers, int[] Articles, int[] Days, int CustomerCount, int ArticleCount)
    {
        public int LastDay { get; } = Days.Max();

        public static Columns From(TrainingColumns train, FeatureSet features, IReadOnlyDictionary<string, int> vocabularySizes) =>
            new(train.Ints[features.QueryId], train.Ints[features.CandidateId],
                train.Ints.TryGetValue(DataFiles.DayColumn, out var days) ? days
                    : throw new PipelineError("the candidate sources and the blend need purchase dates, and this data has no t_dat column"),
                vocabularySizes[features.QueryId] + 1, vocabularySizes[features.CandidateId] + 1);

        public Purchases AsOf(int day) => Purchases.From(Customers, Articles, Days, CustomerCount, ArticleCount, day);
    }

    /// <summary>
    /// The sources rebuilt from every training purchase (as of the day after the last), for the given
    /// customers, ordered by the trained ranker (or the union's order when blend.enabled is false).
    /// </summary>
    public static BlendedList AtEndOfTraining(ArtifactStore store, PipelineConfig config, TwoTowerModel model, IKernels kernels,
        TrainingColumns train, IReadOnlyList<int> customers)
    {
        var features = FeatureSet.From(config);
        var columns = Columns.From(train, features, TrainedModel.VocabularySizes(store, features));
        var sources = SourceSet.Build(config, columns.AsOf(columns.LastDay + 1), train, features,
            NormalizationStats.ReadAll(store.StageDir("normalize")), model, kernels, customers);
        var blendFeatures = new BlendFeatures(sources.Purchases, sources.Sources.Select(x => x.Name).ToArray());
        var rankerPath = Path.Combine(store.StageDir("blend"), RankerFile);
        var ranker = File.Exists(rankerPath) ? BlendRanker.Load(rankerPath, blendFeatures.Count) : null;
        return new BlendedList(sources, blendFeatures, ranker);
    }
}
