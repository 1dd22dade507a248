using TwoTower.Data;
using TwoTower.Kernels;

namespace TwoTower.Model;

/// <summary>
/// A trainable tensor's host copy: its value and Adam moments (checkpoints, ONNX, serving). Training
/// works on its buffers on the backend (<see cref="DeviceVariable"/>) and copies them back after each epoch.
/// </summary>
public sealed class Variable(string name, int rows, int cols, bool isEmbedding)
{
    public string Name { get; } = name;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public bool IsEmbedding { get; } = isEmbedding;
    public float[] Value { get; } = new float[rows * cols];
    public float[] M { get; } = new float[rows * cols];
    public float[] V { get; } = new float[rows * cols];
}

/// <summary>
/// One input of a tower and where it sits in the concatenated input vector. SharedEmbedding: the
/// table belongs to the other tower (the history embedded with the candidate tower's article table).
/// </summary>
public sealed record TowerInput(Feature Feature, int Offset, int Width, Variable? Embedding, bool SharedEmbedding = false);

/// <summary>
/// One tower: concat[embedded ids | one-hot categories | numbers | pooled history] → Dense(relu) … → Dense.
/// The same class builds the query and the candidate tower from their configured features; it holds
/// the architecture and the host weights, and <see cref="DeviceTower"/> runs it on a backend.
/// </summary>
public sealed class Tower
{
    public string Name { get; }
    public IReadOnlyList<TowerInput> Inputs { get; }
    public int InputDim { get; }
    /// <summary>Each dense layer's weight matrix [in × out] (Keras calls it the kernel).</summary>
    public IReadOnlyList<Variable> LayerWeights { get; }
    public IReadOnlyList<Variable> Biases { get; }
    public int OutputDim => LayerWeights[^1].Cols;
    public bool HasEmbeddings => Inputs.Any(i => i.Embedding != null);

    /// <summary>The purchase-history input (features.query.history), or null.</summary>
    public TowerInput? HistoryInput => Inputs.FirstOrDefault(i => i.Feature.Kind == FeatureKind.History);

    public HistorySpec? History { get; }

    /// <summary>The tower's own variables (a table shared with the other tower is that tower's).</summary>
    public IEnumerable<Variable> Variables =>
        OwnEmbeddings.Select(i => i.Embedding!).Concat(LayerWeights.Zip(Biases).SelectMany(p => new[] { p.First, p.Second }));

    IEnumerable<TowerInput> OwnEmbeddings => Inputs.Where(i => i.Embedding != null && !i.SharedEmbedding);

    /// <param name="vocabularySizes">Known values per categorical column (table rows = size + 1).</param>
    /// <param name="historyTable">The table that embeds the history's articles, and whether it is the other tower's.</param>
    public Tower(string name, IReadOnlyList<Feature> features, IReadOnlyDictionary<string, int> vocabularySizes,
        int embeddingDim, IReadOnlyList<int> layers, bool notebookOneHot, HistorySpec? history = null, (Variable Table, bool Shared)? historyTable = null)
    {
        History = history;
        Name = name;
        var inputs = new List<TowerInput>();
        var offset = 0;
        foreach (var f in features)
        {
            if (f.Kind == FeatureKind.History)
            {
                inputs.Add(new TowerInput(f, offset, embeddingDim, historyTable!.Value.Table, historyTable.Value.Shared));
                offset += embeddingDim;
                continue;
            }
            var (width, embedding) = f.Kind switch
            {
                FeatureKind.Embedded => (embeddingDim, new Variable($"{name}/embedding/{f.Column}", vocabularySizes[f.Column] + 1, embeddingDim, true)),
                FeatureKind.OneHot => (notebookOneHot ? vocabularySizes[f.Column] : vocabularySizes[f.Column] + 1, (Variable?)null),
                _ => (1, null),
            };
            inputs.Add(new TowerInput(f, offset, width, embedding));
            offset += width;
        }
        Inputs = inputs;
        InputDim = offset;
        var kernels = new List<Variable>();
        var biases = new List<Variable>();
        var fanIn = InputDim;
        for (var l = 0; l < layers.Count; l++)
        {
            kernels.Add(new Variable($"{name}/dense_{l}/kernel", fanIn, layers[l], false));
            biases.Add(new Variable($"{name}/dense_{l}/bias", 1, layers[l], false));
            fanIn = layers[l];
        }
        LayerWeights = kernels;
        Biases = biases;
    }

    /// <summary>Keras defaults: embeddings U(−0.05, 0.05), kernels Glorot-uniform, biases 0.</summary>
    public void Initialize(ref Rng rng)
    {
        foreach (var input in OwnEmbeddings)
        {
            var e = input.Embedding!.Value;
            for (var i = 0; i < e.Length; i++)
                e[i] = (float)(rng.NextDouble() * 0.1 - 0.05);
        }
        foreach (var k in LayerWeights)
        {
            var limit = Math.Sqrt(6.0 / (k.Rows + k.Cols));
            for (var i = 0; i < k.Value.Length; i++)
                k.Value[i] = (float)((rng.NextDouble() * 2 - 1) * limit);
        }
    }
}
