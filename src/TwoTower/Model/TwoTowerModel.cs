using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Kernels;

namespace TwoTower.Model;

/// <summary>
/// The query tower and the candidate tower; scores are dot products of their outputs, plus (with
/// features.query.history.repeat_bias) the repeat bias of the customer's history slot that holds the article.
/// </summary>
public sealed class TwoTowerModel(Tower query, Tower candidate, Variable? repeatBias = null)
{
    public Tower Query { get; } = query;
    public Tower Candidate { get; } = candidate;

    /// <summary>
    /// One learned bias per history slot, or null: score(customer, a) = q·c_a + RepeatBias[s] when a
    /// is at slot s of the customer's history (see <see cref="RepeatScores"/>). Starts at 0.
    /// </summary>
    public Variable? RepeatBias { get; } = repeatBias;

    public IReadOnlyList<Variable> Variables => [.. Query.Variables, .. Candidate.Variables, .. RepeatBias is { } bias ? [bias] : Array.Empty<Variable>()];

    public static TwoTowerModel Create(PipelineConfig config, IReadOnlyDictionary<string, int> vocabularySizes)
    {
        var features = FeatureSet.From(config);
        var dim = (int)config.Get(ConfigSchema.Model.EmbeddingDim);
        var notebookOneHot = config.Get(ConfigSchema.Model.OneHotDepth) == "notebook";
        var candidate = new Tower("candidate", features.Candidate, vocabularySizes, dim,
            config.Get(ConfigSchema.Model.CandidateLayers).Select(l => (int)l).ToArray(), notebookOneHot);
        (Variable, bool)? historyTable = features.History switch
        {
            null => null,
            { ShareEmbedding: true } => (SharedArticleTable(candidate, features), true),
            _ => (new Variable("query/embedding/history", vocabularySizes[features.CandidateId] + 1, dim, true), false),
        };
        var query = new Tower("query", features.Query, vocabularySizes, dim, config.Get(ConfigSchema.Model.QueryLayers).Select(l => (int)l).ToArray(),
            notebookOneHot, features.History, historyTable);
        var repeatBias = features.History is { RepeatBias: true, Length: var length } ? new Variable(RepeatBiasName, 1, length, false) : null;
        return new TwoTowerModel(query, candidate, repeatBias);
    }

    public const string RepeatBiasName = "repeat_bias";

    /// <summary>The candidate tower's embedding of its id column: what a shared history embeds with.</summary>
    static Variable SharedArticleTable(Tower candidate, FeatureSet features) =>
        candidate.Inputs.FirstOrDefault(i => i.Feature.Column == features.CandidateId && i.Embedding != null)?.Embedding
        ?? throw new PipelineError(
            $"features.query.history.share_embedding: true needs the candidate tower to embed '{features.CandidateId}' " +
            "(features.candidate.embedded); embed it there or set share_embedding: false");

    /// <summary>Keras default initialisation from one seeded generator, query tower first.</summary>
    public void Initialize(long seed)
    {
        var rng = new Rng((ulong)seed);
        Query.Initialize(ref rng);
        Candidate.Initialize(ref rng);
    }

    public void SaveWeights(string path, IReadOnlyDictionary<string, string> metadata) =>
        SafeTensors.Write(path, Variables.Select(v => new SafeTensors.Tensor(v.Name, Shape(v), v.Value)).ToList(), metadata);

    public Dictionary<string, string> LoadWeights(string path)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        foreach (var v in Variables)
        {
            if (!tensors.TryGetValue(v.Name, out var t) || t.Data.Length != v.Value.Length)
                throw new PipelineError($"{path}: tensor '{v.Name}' is missing or has another shape than the configured model");
            t.Data.CopyTo(v.Value, 0);
        }
        return metadata;
    }

    /// <summary>Weights and Adam moments: what --resume needs to continue exactly.</summary>
    public void SaveCheckpoint(string path, IReadOnlyDictionary<string, string> metadata) =>
        SafeTensors.Write(path, Variables.SelectMany(v => new[]
        {
            new SafeTensors.Tensor(v.Name, Shape(v), v.Value),
            new SafeTensors.Tensor(v.Name + ":m", Shape(v), v.M),
            new SafeTensors.Tensor(v.Name + ":v", Shape(v), v.V),
        }).ToList(), metadata);

    public Dictionary<string, string> LoadCheckpoint(string path)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        foreach (var v in Variables)
        {
            tensors[v.Name].Data.CopyTo(v.Value, 0);
            tensors[v.Name + ":m"].Data.CopyTo(v.M, 0);
            tensors[v.Name + ":v"].Data.CopyTo(v.V, 0);
        }
        return metadata;
    }

    static int[] Shape(Variable v) => v.Rows == 1 && !v.IsEmbedding ? [v.Cols] : [v.Rows, v.Cols];

    /// <summary>Embeds rows of a column set with one tower, in batches (evaluation, serving).</summary>
    public static float[] Embed(Tower tower, IKernels kernels, TrainingColumns data, IReadOnlyList<int> rows, int batchSize = 4096)
    {
        using var device = new DeviceTower(kernels, tower, Math.Max(1, Math.Min(batchSize, rows.Count)), trainingFromStep: null);
        return device.Embed(data, rows);
    }
}
