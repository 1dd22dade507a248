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

    sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    readonly MLContext ml;
    readonly ITransformer model;
    readonly int featureCount;
    // Prediction engines are fast per row but not thread-safe: one per concurrent caller, kept for reuse.
    readonly System.Collections.Concurrent.ConcurrentBag<PredictionEngine<Row, ScoreRow>> engines = [];

    BlendRanker(MLContext ml, ITransformer model, int featureCount) => (this.ml, this.model, this.featureCount) = (ml, model, featureCount);

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

    /// <summary>
    /// The scores of a few rows (one request's candidates) through a prediction engine: ML.NET's
    /// data-view pipeline costs milliseconds per call, the engine microseconds per row.
    /// </summary>
    public float[] ScoreFew(float[] features)
    {
        var rows = features.Length / featureCount;
        if (!engines.TryTake(out var engine))
            engine = ml.Model.CreatePredictionEngine<Row, ScoreRow>(model, inputSchemaDefinition: Schema(featureCount));
        try
        {
            var scores = new float[rows];
            var row = new Row { Features = new float[featureCount] };
            for (var i = 0; i < rows; i++)
            {
                features.AsSpan(i * featureCount, featureCount).CopyTo(row.Features);
                scores[i] = engine.Predict(row).Score;
            }
            return scores;
        }
        finally
        {
            engines.Add(engine);
        }
    }

    /// <summary>The ranker's score of each row (higher: earlier in the list), many rows in one pass.</summary>
    public float[] Score(float[] features)
    {
        var rows = features.Length / featureCount;
        if (rows == 0)
            return [];
        var data = ml.Data.LoadFromEnumerable(Rows(features, featureCount, null, new int[rows]), Schema(featureCount));
        return model.Transform(data).GetColumn<float>("Score").ToArray();
    }
}
