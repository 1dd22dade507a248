using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers.LightGbm;

namespace TwoTower.Retrieval;

/// <summary>
/// The learned blend: a LightGBM LambdaRank ranker (ML.NET's Microsoft.ML.LightGbm) over the
/// union's candidates of each customer, relevance 1 for an article the customer bought in the
/// label days and 0 otherwise. One thread and a fixed seed: the same rows give the same trees.
/// </summary>
public sealed class BlendRanker
{
    public sealed record Settings(int Trees, int Leaves, double LearningRate, int MinRowsInLeaf, int Seed);

    /// <summary>One (customer, candidate) row as ML.NET reads it; the feature vector's length is set at run time.</summary>
    sealed class Row
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
        public uint Group { get; set; }
    }

    readonly MLContext ml;
    readonly ITransformer model;
    readonly int featureCount;
    readonly TreeScorer trees;
    readonly LightGbmRankingModelParameters parameters;

    BlendRanker(MLContext ml, ITransformer model, int featureCount)
    {
        (this.ml, this.model, this.featureCount) = (ml, model, featureCount);
        // The chain's last step holds the trees (a chain just trained and a chain loaded are typed differently).
        parameters = ((RankingPredictionTransformer<LightGbmRankingModelParameters>)((IEnumerable<ITransformer>)model).Last()).Model;
        trees = new TreeScorer(parameters.TrainedTreeEnsemble, featureCount);
    }

    static SchemaDefinition Schema(int featureCount)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, featureCount);
        return schema;
    }

    static IEnumerable<Row> Rows(float[] features, int featureCount, float[]? labels, int[] groups) =>
        Enumerable.Range(0, groups.Length).Select(i => new Row
        {
            Features = features.AsSpan(i * featureCount, featureCount).ToArray(),
            Label = labels?[i] ?? 0,
            Group = (uint)groups[i],
        });

    /// <param name="features">Row-major, featureCount per row.</param>
    /// <param name="groups">Each row's customer; rows of one customer are consecutive.</param>
    public static BlendRanker Train(float[] features, int featureCount, float[] labels, int[] groups, Settings settings)
    {
        var ml = new MLContext(settings.Seed);
        var data = ml.Data.LoadFromEnumerable(Rows(features, featureCount, labels, groups), Schema(featureCount));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("GroupKey", nameof(Row.Group))
            .Append(ml.Ranking.Trainers.LightGbm(new LightGbmRankingTrainer.Options
            {
                LabelColumnName = nameof(Row.Label),
                FeatureColumnName = nameof(Row.Features),
                RowGroupColumnName = "GroupKey",
                NumberOfIterations = settings.Trees,
                NumberOfLeaves = settings.Leaves,
                LearningRate = settings.LearningRate,
                MinimumExampleCountPerLeaf = settings.MinRowsInLeaf,
                NumberOfThreads = 1,
                Seed = settings.Seed,
                Silent = true,
            }));
        return new BlendRanker(ml, pipeline.Fit(data), featureCount);
    }

    /// <summary>
    /// ML.NET's zip, rewritten with every entry's time fixed: ML.NET stamps the entries with the
    /// clock, and the same ranker must be the same bytes (caching, kill-and-rerun checks).
    /// </summary>
    public void Save(string path)
    {
        using var saved = new MemoryStream();
        ml.Model.Save(model, ml.Data.LoadFromEnumerable(Array.Empty<Row>(), Schema(featureCount)).Schema, saved);
        saved.Position = 0;
        using var source = new ZipArchive(saved, ZipArchiveMode.Read);
        Pipeline.ArtifactStore.WriteAtomic(path, stream =>
        {
            using var target = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var entry in source.Entries)
            {
                var copy = target.CreateEntry(entry.FullName, CompressionLevel.Optimal);
                copy.LastWriteTime = new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var from = entry.Open();
                using var to = copy.Open();
                from.CopyTo(to);
            }
        });
    }

    public static BlendRanker Load(string path, int featureCount)
    {
        var ml = new MLContext(0);
        using var stream = File.OpenRead(path);
        return new BlendRanker(ml, ml.Model.Load(stream, out _), featureCount);
    }

    /// <summary>The ranker's score of each row (higher: earlier in the list), by walking its trees (see <see cref="TreeScorer"/>).</summary>
    public float[] Score(float[] features) => trees.Score(features);

    /// <summary>
    /// Each feature's share of the split gain of all the trees (LightGBM's "gain" importance: the
    /// gains of the splits on the feature, summed, over the total; 0 for a feature no split uses):
    /// which features the ranker leans on.
    /// </summary>
    public double[] GainShares()
    {
        var gains = new double[featureCount];
        foreach (var tree in parameters.TrainedTreeEnsemble.Trees)
        {
            for (var n = 0; n < tree.NumberOfNodes; n++)
                gains[tree.NumericalSplitFeatureIndexes[n]] += tree.SplitGains[n];
        }
        var total = gains.Sum();
        return total > 0 ? gains.Select(g => g / total).ToArray() : gains;
    }

    /// <summary>The trees LightGBM built (at most the Settings' count: it stops when no split gains).</summary>
    public int TreeCount => trees.TreeCount;

    /// <summary>The rows' scores by the first `step`, 2·`step`, … trees and by all (see <see cref="TreeScorer.ScoresByTreeCount"/>).</summary>
    public List<(int Trees, float[] Scores)> ScoresByTreeCount(float[] features, int step) => trees.ScoresByTreeCount(features, step);
}
