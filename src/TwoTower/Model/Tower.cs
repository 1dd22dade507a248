using TwoTower.Data;
using TwoTower.Kernels;

namespace TwoTower.Model;

/// <summary>A trainable tensor with its gradient and Adam moments.</summary>
public sealed class Variable(string name, int rows, int cols, bool isEmbedding)
{
    public string Name { get; } = name;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public bool IsEmbedding { get; } = isEmbedding;
    public float[] Value { get; } = new float[rows * cols];
    public float[] Grad { get; } = new float[rows * cols];
    public float[] M { get; } = new float[rows * cols];
    public float[] V { get; } = new float[rows * cols];

    /// <summary>Distinct rows an embedding's gradient touched this step (sorted).</summary>
    public List<int> TouchedRows { get; } = [];

    /// <summary>Embeddings: the last optimizer step applied to each row (updates are lazy, see IKernels.AdamWRows).</summary>
    public int[] RowStep { get; } = isEmbedding ? new int[rows] : [];

    /// <summary>Embeddings: 0..Rows−1, for catching every row up.</summary>
    public int[] AllRows { get; } = isEmbedding ? Enumerable.Range(0, rows).ToArray() : [];

    bool[] touched = [];

    public void MarkTouched(ReadOnlySpan<int> ids)
    {
        if (touched.Length != Rows)
            touched = new bool[Rows];
        foreach (var id in ids)
        {
            if (!touched[id])
            {
                touched[id] = true;
                TouchedRows.Add(id);
            }
        }
        TouchedRows.Sort();
    }

    /// <summary>Zeroes the touched rows' gradient and forgets them (after the optimizer step).</summary>
    public void ClearTouched()
    {
        foreach (var row in TouchedRows)
        {
            touched[row] = false;
            Grad.AsSpan(row * Cols, Cols).Clear();
        }
        TouchedRows.Clear();
    }
}

/// <summary>One input of a tower and where it sits in the concatenated input vector.</summary>
public sealed record TowerInput(Feature Feature, int Offset, int Width, Variable? Embedding);

/// <summary>
/// One tower: concat[embedded ids | one-hot categories | numbers] → Dense(relu) … → Dense.
/// The same class builds the query and the candidate tower from their configured features.
/// </summary>
public sealed class Tower
{
    public string Name { get; }
    public IReadOnlyList<TowerInput> Inputs { get; }
    public int InputDim { get; }
    public IReadOnlyList<Variable> Kernels { get; }
    public IReadOnlyList<Variable> Biases { get; }
    public int OutputDim => Kernels[^1].Cols;
    public bool NotebookOneHot { get; }
    bool HasEmbeddings => Inputs.Any(i => i.Embedding != null);

    public IEnumerable<Variable> Variables =>
        Inputs.Where(i => i.Embedding != null).Select(i => i.Embedding!).Concat(Kernels.Zip(Biases).SelectMany(p => new[] { p.First, p.Second }));

    // Per-batch buffers: input, then each layer's output.
    float[] x = [];
    float[] dInput = [];
    float[][] activations = [];
    float[][] deltas = [];
    int capacity;

    /// <param name="vocabularySizes">Known values per categorical column (table rows = size + 1).</param>
    public Tower(string name, IReadOnlyList<Feature> features, IReadOnlyDictionary<string, int> vocabularySizes,
        int embeddingDim, IReadOnlyList<int> layers, bool notebookOneHot)
    {
        Name = name;
        NotebookOneHot = notebookOneHot;
        var inputs = new List<TowerInput>();
        var offset = 0;
        foreach (var f in features)
        {
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
        Kernels = kernels;
        Biases = biases;
    }

    /// <summary>Keras defaults: embeddings U(−0.05, 0.05), kernels Glorot-uniform, biases 0.</summary>
    public void Initialize(ref Rng rng)
    {
        foreach (var input in Inputs.Where(i => i.Embedding != null))
        {
            var e = input.Embedding!.Value;
            for (var i = 0; i < e.Length; i++)
                e[i] = (float)(rng.NextDouble() * 0.1 - 0.05);
        }
        foreach (var k in Kernels)
        {
            var limit = Math.Sqrt(6.0 / (k.Rows + k.Cols));
            for (var i = 0; i < k.Value.Length; i++)
                k.Value[i] = (float)((rng.NextDouble() * 2 - 1) * limit);
        }
    }

    void EnsureCapacity(int rows)
    {
        if (rows <= capacity)
            return;
        capacity = rows;
        x = new float[rows * InputDim];
        dInput = new float[rows * InputDim];
        activations = Kernels.Select(k => new float[rows * k.Cols]).ToArray();
        deltas = Kernels.Select(k => new float[rows * k.Cols]).ToArray();
    }

    /// <summary>Builds the input matrix of a batch and runs the layers; returns the output rows×OutputDim.</summary>
    public ReadOnlySpan<float> Forward(IKernels kernels, TowerBatch batch)
    {
        var rows = batch.Rows;
        EnsureCapacity(rows);
        var input = x.AsSpan(0, rows * InputDim);
        input.Clear();
        foreach (var i in Inputs)
        {
            switch (i.Feature.Kind)
            {
                case FeatureKind.Embedded:
                    kernels.EmbeddingGather(i.Embedding!.Value, i.Width, batch.Ids(i.Feature.Column), input, InputDim, i.Offset);
                    break;
                case FeatureKind.OneHot:
                    var ids = batch.Ids(i.Feature.Column);
                    for (var r = 0; r < rows; r++)
                    {
                        // Notebook depth n: id n (the last category) falls outside and stays all zeros.
                        if (ids[r] < i.Width)
                            input[r * InputDim + i.Offset + ids[r]] = 1;
                    }
                    break;
                default:
                    var values = batch.Values(i.Feature.Column);
                    for (var r = 0; r < rows; r++)
                        input[r * InputDim + i.Offset] = values[r];
                    break;
            }
        }
        ReadOnlySpan<float> current = input;
        var inDim = InputDim;
        for (var l = 0; l < Kernels.Count; l++)
        {
            var output = activations[l].AsSpan(0, rows * Kernels[l].Cols);
            kernels.DenseForward(current, rows, inDim, Kernels[l].Value, Biases[l].Value, Kernels[l].Cols, relu: l < Kernels.Count - 1, output);
            current = output;
            inDim = Kernels[l].Cols;
        }
        return current;
    }

    /// <summary>
    /// Backward from dOutput (rows×OutputDim) of the last <see cref="Forward"/>: dense gradients are
    /// overwritten; embedding gradients are added into the (zeroed) tables' touched rows.
    /// </summary>
    public void Backward(IKernels kernels, TowerBatch batch, ReadOnlySpan<float> dOutput)
    {
        var rows = batch.Rows;
        var last = Kernels.Count - 1;
        dOutput.CopyTo(deltas[last]);
        for (var l = last; l >= 0; l--)
        {
            var k = Kernels[l];
            var dy = deltas[l].AsSpan(0, rows * k.Cols);
            ReadOnlySpan<float> layerInput = l == 0 ? x.AsSpan(0, rows * InputDim) : activations[l - 1].AsSpan(0, rows * k.Rows);
            // The input layer's dx is only needed for the embedding slices.
            Span<float> dx = l > 0 ? deltas[l - 1].AsSpan(0, rows * k.Rows) : HasEmbeddings ? dInput.AsSpan(0, rows * InputDim) : [];
            kernels.DenseBackward(layerInput, rows, k.Rows, k.Value, k.Cols, dy, k.Grad, Biases[l].Grad, dx);
            if (l > 0)
                kernels.ReluBackward(activations[l - 1].AsSpan(0, rows * k.Rows), dx);
        }
        foreach (var i in Inputs.Where(i => i.Embedding != null))
        {
            var ids = batch.Ids(i.Feature.Column);
            kernels.EmbeddingScatterAdd(i.Embedding!.Grad, i.Width, ids, dInput.AsSpan(0, rows * InputDim), InputDim, i.Offset);
        }
    }
}

/// <summary>The feature values of one batch, column by column.</summary>
public sealed class TowerBatch
{
    readonly Dictionary<string, int[]> ids = new();
    readonly Dictionary<string, float[]> values = new();

    public int Rows { get; private set; }

    public ReadOnlySpan<int> Ids(string column) => ids[column].AsSpan(0, Rows);
    public ReadOnlySpan<float> Values(string column) => values[column].AsSpan(0, Rows);

    /// <summary>Copies the given rows of the full columns into this batch (buffers reused).</summary>
    public void Fill(TrainingColumns data, IReadOnlyList<Feature> features, ReadOnlySpan<int> rows)
    {
        Rows = rows.Length;
        foreach (var f in features)
        {
            if (f.IsCategorical)
            {
                var source = data.Ints[f.Column];
                var target = Buffer(ids, f.Column, rows.Length);
                for (var r = 0; r < rows.Length; r++)
                    target[r] = source[rows[r]];
            }
            else
            {
                var source = data.Floats[f.Column];
                var target = Buffer(values, f.Column, rows.Length);
                for (var r = 0; r < rows.Length; r++)
                    target[r] = source[rows[r]];
            }
        }
    }

    static T[] Buffer<T>(Dictionary<string, T[]> buffers, string column, int length)
    {
        if (!buffers.TryGetValue(column, out var buffer) || buffer.Length < length)
            buffers[column] = buffer = new T[length];
        return buffer;
    }
}

/// <summary>Encoded and normalized columns (artifacts/normalize) held in memory for training.</summary>
public sealed record TrainingColumns(int RowCount, IReadOnlyDictionary<string, int[]> Ints, IReadOnlyDictionary<string, float[]> Floats)
{
    public static TrainingColumns From(ColumnTable table)
    {
        var ints = new Dictionary<string, int[]>();
        var floats = new Dictionary<string, float[]>();
        foreach (var name in table.Names)
        {
            if (table.Column(name) is int[] i)
                ints[name] = i;
            else
                floats[name] = table.Floats(name);
        }
        return new TrainingColumns(table.RowCount, ints, floats);
    }
}
