using TwoTower.Data;
using TwoTower.Kernels;

namespace TwoTower.Model;

/// <summary>
/// A variable's buffers on a backend: its value and, when training, its gradient, Adam moments and
/// (embeddings) the last optimizer step applied to each row (updates are lazy, see IKernels.AdamWRows).
/// </summary>
public sealed class DeviceVariable : IDisposable
{
    readonly IKernels kernels;
    DeviceBuffer<int>? allRows;

    public Variable Host { get; }
    public DeviceBuffer<float> Value { get; }
    public DeviceBuffer<float>? Grad { get; }
    public DeviceBuffer<float>? M { get; }
    public DeviceBuffer<float>? V { get; }
    public DeviceBuffer<int>? RowStep { get; }

    /// <param name="trainingFromStep">null: the value only (inference); else the optimizer state, every row at that step.</param>
    public DeviceVariable(IKernels kernels, Variable host, int? trainingFromStep)
    {
        this.kernels = kernels;
        Host = host;
        Value = kernels.Upload(host.Value);
        if (trainingFromStep is not { } step)
            return;
        Grad = kernels.Allocate<float>(host.Value.Length);
        M = kernels.Upload(host.M);
        V = kernels.Upload(host.V);
        if (host.IsEmbedding)
            RowStep = kernels.Upload(Enumerable.Repeat(step, host.Rows).ToArray());
    }

    /// <summary>
    /// Training state in slices of buffers shared with other variables (a tower's dense variables
    /// live in one block, so that one Adam launch updates them all); the host values are copied in.
    /// </summary>
    public DeviceVariable(IKernels kernels, Variable host, DeviceBuffer<float> value, DeviceBuffer<float> grad, DeviceBuffer<float> m, DeviceBuffer<float> v)
    {
        this.kernels = kernels;
        Host = host;
        (Value, Grad, M, V) = (value, grad, m, v);
        kernels.CopyFromHost<float>(host.Value, value);
        kernels.CopyFromHost<float>(host.M, m);
        kernels.CopyFromHost<float>(host.V, v);
    }

    /// <summary>Embeddings: 0..Rows−1, for catching every row up.</summary>
    public DeviceBuffer<int> AllRows => allRows ??= kernels.Upload(Enumerable.Range(0, Host.Rows).ToArray());

    /// <summary>Copies the value and moments back into the host variable.</summary>
    public void CopyToHost()
    {
        kernels.CopyToHost(Value, Host.Value);
        if (M != null && V != null)
        {
            kernels.CopyToHost(M, Host.M);
            kernels.CopyToHost(V, Host.V);
        }
    }

    public void Dispose()
    {
        Value.Dispose();
        Grad?.Dispose();
        M?.Dispose();
        V?.Dispose();
        RowStep?.Dispose();
        allRows?.Dispose();
    }
}

/// <summary>
/// Columns of a <see cref="TrainingColumns"/> uploaded to a backend once; a batch is a list of their
/// rows, read by the ops directly.
/// </summary>
public sealed class DeviceColumns(IKernels kernels, TrainingColumns data, IEnumerable<string> columns) : IDisposable
{
    public IReadOnlyDictionary<string, DeviceBuffer<int>> Ints { get; } =
        columns.Distinct().Where(data.Ints.ContainsKey).ToDictionary(c => c, c => kernels.Upload(data.Ints[c]));

    public IReadOnlyDictionary<string, DeviceBuffer<float>> Floats { get; } =
        columns.Distinct().Where(data.Floats.ContainsKey).ToDictionary(c => c, c => kernels.Upload(data.Floats[c]));

    public void Dispose()
    {
        foreach (var b in Ints.Values)
            b.Dispose();
        foreach (var b in Floats.Values)
            b.Dispose();
    }
}

/// <summary>
/// A <see cref="Tower"/> run on a backend: its variables' buffers and per-batch buffers (sized for
/// `capacity` rows), forward and backward side by side. A batch is a list of rows of resident
/// columns. Training also groups each embedded column's ids per batch (<see cref="RowGroups"/>).
/// </summary>
public sealed class DeviceTower : IDisposable
{
    readonly IKernels kernels;
    readonly Tower tower;
    readonly int capacity;
    readonly DeviceBuffer<float> x;
    readonly DeviceBuffer<float>? dInput;
    readonly DeviceBuffer<float>[] activations, deltas;
    readonly DeviceVariable[] layerKernels, layerBiases;
    readonly (TowerInput Input, DeviceVariable Table, RowGroups? Groups)[] embeddings;
    /// <summary>The pooled purchase history: its table (maybe the other tower's), row groups (training), slot weights and each batch row's pooling weights.</summary>
    readonly (TowerInput Input, DeviceVariable Table, RowGroups? Groups, DeviceBuffer<float> SlotWeights, DeviceBuffer<float> Weights)? history;
    /// <summary>An inference copy of a table that belongs to the other tower (a shared history table), freed with this tower.</summary>
    readonly DeviceVariable? borrowedTable;

    /// <summary>The variables' buffers, in <see cref="Tower.Variables"/> order.</summary>
    public IReadOnlyList<DeviceVariable> Variables { get; }

    /// <summary>Training: every dense kernel and bias in one block of buffers (value, gradient, m, v).</summary>
    public (DeviceBuffer<float> Value, DeviceBuffer<float> Grad, DeviceBuffer<float> M, DeviceBuffer<float> V)? DenseBlock { get; }

    /// <summary>Training: each of the tower's own embedding tables with the row groups of the current batch's ids.</summary>
    public IEnumerable<(DeviceVariable Table, RowGroups Groups)> EmbeddingGroups =>
        embeddings.Select(e => (e.Table, e.Groups!)).Concat(history is { Input.SharedEmbedding: false } h ? [(h.Table, h.Groups!)] : []);

    /// <summary>Training: the history's row groups of the current batch (the rows of a shared table it touches), or null.</summary>
    public RowGroups? HistoryGroups => history?.Groups;

    /// <param name="trainingFromStep">null: inference only; else training state at that optimizer step.</param>
    /// <param name="sharedHistoryTable">Training with a shared history table: the other tower's buffers of it.</param>
    public DeviceTower(IKernels kernels, Tower tower, int capacity, int? trainingFromStep, DeviceVariable? sharedHistoryTable = null)
    {
        this.kernels = kernels;
        this.tower = tower;
        this.capacity = capacity;
        var training = trainingFromStep != null;
        var variables = new Dictionary<Variable, DeviceVariable>();
        var dense = tower.Variables.Where(v => !v.IsEmbedding).ToArray();
        if (training)
        {
            var length = dense.Sum(v => v.Value.Length);
            var block = (Value: kernels.Allocate<float>(length), Grad: kernels.Allocate<float>(length), M: kernels.Allocate<float>(length),
                V: kernels.Allocate<float>(length));
            DenseBlock = block;
            var at = 0;
            foreach (var v in dense)
            {
                var n = v.Value.Length;
                variables[v] = new DeviceVariable(kernels, v, block.Value.Slice(at, n), block.Grad.Slice(at, n), block.M.Slice(at, n), block.V.Slice(at, n));
                at += n;
            }
        }
        foreach (var v in tower.Variables.Where(v => !variables.ContainsKey(v)))
            variables[v] = new DeviceVariable(kernels, v, trainingFromStep);
        Variables = tower.Variables.Select(v => variables[v]).ToArray();
        embeddings = tower.Inputs.Where(i => i.Embedding != null && i.Feature.Kind != FeatureKind.History)
            .Select(i => (i, variables[i.Embedding!], training ? new RowGroups(kernels, capacity) : null)).ToArray();
        if (tower.HistoryInput is { } h)
        {
            var table = !h.SharedEmbedding ? variables[h.Embedding!]
                : sharedHistoryTable ?? (training ? throw new ArgumentException("training with a shared history table needs the candidate tower's buffers")
                    : borrowedTable = new DeviceVariable(kernels, h.Embedding!, null));
            var length = tower.History!.Length;
            history = (h, table, training ? new RowGroups(kernels, capacity * length) : null, kernels.Upload(tower.History.SlotWeights),
                kernels.Allocate<float>(capacity * length));
        }
        layerKernels = tower.LayerWeights.Select(k => variables[k]).ToArray();
        layerBiases = tower.Biases.Select(b => variables[b]).ToArray();
        x = kernels.Allocate<float>(capacity * tower.InputDim);
        activations = tower.LayerWeights.Select(k => kernels.Allocate<float>(capacity * k.Cols)).ToArray();
        if (training)
        {
            // The last layer's delta is the loss's gradient, passed to Backward; the input layer's dx is only needed for the embedding slices.
            deltas = tower.LayerWeights.SkipLast(1).Select(k => kernels.Allocate<float>(capacity * k.Cols)).ToArray();
            dInput = tower.HasEmbeddings ? kernels.Allocate<float>(capacity * tower.InputDim) : null;
        }
        else
            deltas = [];
    }

    /// <summary>
    /// The tower's outputs for rows of a column set (rows.Count × OutputDim), in batches of the
    /// tower's capacity. A serving process keeps one inference tower and calls this per request.
    /// </summary>
    public float[] Embed(TrainingColumns data, IReadOnlyList<int> rows)
    {
        var output = new float[rows.Count * tower.OutputDim];
        using var columns = new DeviceColumns(kernels, data, tower.Inputs.Select(i => i.Feature.Column));
        using var rowBuffer = kernels.Upload(rows as int[] ?? rows.ToArray());
        for (var start = 0; start < rows.Count; start += capacity)
        {
            var n = Math.Min(capacity, rows.Count - start);
            kernels.CopyToHost(Forward(columns, rowBuffer.Slice(start, n), n), output.AsSpan(start * tower.OutputDim, n * tower.OutputDim));
        }
        return output;
    }

    /// <summary>Groups each embedded column's ids (and the history's) of a batch by row on the host, from the host copy of the columns.</summary>
    public void GroupEmbeddedIds(TrainingColumns host, ReadOnlySpan<int> rows)
    {
        foreach (var (input, _, groups) in embeddings)
            groups!.Build(host.Ints[input.Feature.Column], rows);
        history?.Groups!.Build(host.Ints[PurchaseHistory.Column], tower.History!.Length, rows);
    }

    /// <summary>Copies the groups of the last <see cref="GroupEmbeddedIds"/> to the backend.</summary>
    public void UploadGroups()
    {
        foreach (var (_, _, groups) in embeddings)
            groups!.Upload();
        history?.Groups!.Upload();
    }

    /// <summary>
    /// Builds the input matrix of a batch (`count` rows of the resident columns, listed in `rows`) and
    /// runs the layers; returns the output buffer (count × OutputDim).
    /// </summary>
    public DeviceBuffer<float> Forward(DeviceColumns columns, DeviceBuffer<int> rows, int count)
    {
        var inDim = tower.InputDim;
        foreach (var (input, table, _) in embeddings)
            kernels.EmbeddingGather(table.Value, input.Width, columns.Ints[input.Feature.Column], rows, count, x, inDim, input.Offset);
        if (history is { } h)
            kernels.EmbeddingBagGather(h.Table.Value, h.Input.Width, columns.Ints[PurchaseHistory.Column], tower.History!.Length, h.SlotWeights, rows, count,
                x, inDim, h.Input.Offset, h.Weights);
        foreach (var i in tower.Inputs)
        {
            if (i.Feature.Kind == FeatureKind.OneHot)
                // Notebook depth n: id n (the last category) falls outside and stays all zeros.
                kernels.OneHot(columns.Ints[i.Feature.Column], rows, count, i.Width, x, inDim, i.Offset);
            else if (i.Feature.Kind is FeatureKind.Numeric or FeatureKind.Raw)
                kernels.CopyToColumn(columns.Floats[i.Feature.Column], rows, count, x, inDim, i.Offset);
        }
        var current = x;
        for (var l = 0; l < layerKernels.Length; l++)
        {
            var k = layerKernels[l];
            kernels.DenseForward(current, count, inDim, k.Value, layerBiases[l].Value, k.Host.Cols, relu: l < layerKernels.Length - 1, activations[l]);
            current = activations[l];
            inDim = k.Host.Cols;
        }
        return current;
    }

    /// <summary>
    /// Backward from dOutput (count × OutputDim) of the last <see cref="Forward"/>: dense gradients are
    /// overwritten; each embedding's gradient is written on the rows the batch touched (its row groups).
    /// A shared history table's gradient is added to what is there (the trainer zeroes its rows and
    /// runs the other tower's backward first).
    /// </summary>
    public void Backward(DeviceBuffer<float> dOutput, int count)
    {
        for (var l = layerKernels.Length - 1; l >= 0; l--)
        {
            var k = layerKernels[l];
            var dy = l == layerKernels.Length - 1 ? dOutput : deltas[l];
            var layerInput = l == 0 ? x : activations[l - 1];
            var dx = l > 0 ? deltas[l - 1] : dInput;
            kernels.DenseBackward(layerInput, count, k.Host.Rows, k.Value, k.Host.Cols, dy, k.Grad!, layerBiases[l].Grad!, dx);
            if (l > 0)
                kernels.ReluBackward(activations[l - 1], deltas[l - 1], count * k.Host.Rows);
        }
        foreach (var (input, table, groups) in embeddings)
            kernels.EmbeddingRowGradients(dInput!, tower.InputDim, input.Offset, input.Width, groups!, table.Grad!);
        if (history is { } h)
            kernels.EmbeddingBagRowGradients(dInput!, tower.InputDim, h.Input.Offset, h.Input.Width, h.Weights, tower.History!.Length, h.Groups!,
                accumulate: h.Input.SharedEmbedding, h.Table.Grad!);
    }

    public void Dispose()
    {
        foreach (var v in Variables)
            v.Dispose();
        if (DenseBlock is { } block)
        {
            block.Value.Dispose();
            block.Grad.Dispose();
            block.M.Dispose();
            block.V.Dispose();
        }
        foreach (var (_, _, groups) in embeddings)
            groups?.Dispose();
        if (history is { } h)
        {
            h.Groups?.Dispose();
            h.SlotWeights.Dispose();
            h.Weights.Dispose();
        }
        borrowedTable?.Dispose();
        x.Dispose();
        dInput?.Dispose();
        foreach (var b in activations.Concat(deltas))
            b.Dispose();
    }
}
