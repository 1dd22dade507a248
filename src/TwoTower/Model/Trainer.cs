using System.Diagnostics;
using TwoTower.Config;
using TwoTower.Kernels;

namespace TwoTower.Model;

public sealed record TrainOptions(
    int Epochs, int BatchSize, double LearningRate, double WeightDecay, bool KerasDecay,
    double Beta1, double Beta2, double Epsilon, bool ShuffleRows, double Temperature,
    bool LogQCorrection, bool RemoveAccidentalHits, long Seed)
{
    /// <summary>Each epoch, this share of training rows sees the unknown query id instead of theirs (in <see cref="QueryIdColumn"/>).</summary>
    public double QueryIdDropout { get; init; }
    public string QueryIdColumn { get; init; } = "customer_id";

    public static TrainOptions From(PipelineConfig c) => new(
        (int)c.Get(ConfigSchema.Train.Epochs), (int)c.Get(ConfigSchema.Train.BatchSize), c.Get(ConfigSchema.Train.LearningRate),
        c.Get(ConfigSchema.Train.WeightDecay), c.Get(ConfigSchema.Train.WeightDecayConvention) == "keras",
        c.Get(ConfigSchema.Train.Beta1), c.Get(ConfigSchema.Train.Beta2), c.Get(ConfigSchema.Train.Epsilon), c.Get(ConfigSchema.Train.Shuffle) == "rows",
        c.Get(ConfigSchema.Train.Temperature), c.Get(ConfigSchema.Train.LogqCorrection), c.Get(ConfigSchema.Train.RemoveAccidentalHits), c.Get(ConfigSchema.Seed))
    {
        QueryIdDropout = c.Get(ConfigSchema.Train.QueryIdDropout),
        QueryIdColumn = c.Get(ConfigSchema.FeaturesQuery.Id),
    };
}

public sealed record EpochStats(int Epoch, double LossPerExample, double LossPerBatch, double Seconds, double RowsPerSecond)
{
    /// <summary>Validation hit@k after this epoch, when train.validate_every asked for it.</summary>
    public Dictionary<int, double>? ValidationHitAt { get; init; }

    /// <summary>Validation MRR (capped at the largest k) after this epoch, when validated.</summary>
    public double? ValidationMrr { get; init; }
}

/// <summary>
/// Early stopping on a validation metric, decided from the history alone (so a resumed run
/// decides the same): the best epoch is the first with the highest value; stop once `patience`
/// validations in a row have not beaten it.
/// </summary>
public sealed record EarlyStopping(string Metric, int Patience)
{
    public static EarlyStopping? From(PipelineConfig c) =>
        c.Get(ConfigSchema.Train.EarlyStoppingMetric) == "none" ? null
            : new EarlyStopping(c.Get(ConfigSchema.Train.EarlyStoppingMetric), (int)c.Get(ConfigSchema.Train.EarlyStoppingPatience));

    double? Value(EpochStats s) => Metric == "mrr" ? s.ValidationMrr
        : s.ValidationHitAt?.GetValueOrDefault(int.Parse(Metric[4..], System.Globalization.CultureInfo.InvariantCulture));

    public int? BestEpoch(IReadOnlyList<EpochStats> history)
    {
        EpochStats? best = null;
        foreach (var s in history)
        {
            if (Value(s) is { } v && (best is null || v > Value(best)!.Value))
                best = s;
        }
        return best?.Epoch;
    }

    public bool ShouldStop(IReadOnlyList<EpochStats> history)
    {
        var best = BestEpoch(history);
        return best != null && history.Count(s => s.Epoch > best && Value(s) != null) >= Patience;
    }
}

/// <summary>
/// The TFRS retrieval task trained with AdamW: per batch, both towers forward, the in-batch
/// softmax loss (summed over the batch), both towers backward, one AdamW step on every variable.
/// The columns, weights and Adam moments are uploaded to the backend once, the learning rates once
/// per epoch; per step only the batch's embedding-row groups go in (one copy per embedding) and the
/// batch's losses come out. The model's host variables are brought up to date at the end of each epoch.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly TwoTowerModel model;
    readonly IKernels kernels;
    public IKernels Kernels => kernels;
    readonly TrainOptions options;
    readonly TrainingColumns data;
    /// <summary>With query-id dropout: the query ids as the data has them (data's own column is this epoch's copy, some rows unknown).</summary>
    readonly int[]? queryIds;

    // On the backend: the columns, both towers' weights and state, the batch buffers.
    readonly DeviceColumns columns;
    readonly DeviceBuffer<float> logQPerRow;
    readonly DeviceTower query, candidate;
    readonly DeviceBuffer<int> orderBuffer, batchRows, batchItems;
    readonly DeviceBuffer<float> offsets, lossPerRow, dq, dc;
    DeviceBuffer<float> lrTBuffer;
    readonly string itemColumn;
    readonly int[] order;
    readonly float[] losses;
    readonly (DeviceVariable Table, RowGroups Groups)[] embeddingInputs;
    /// <summary>
    /// A history embedded with the candidate tower's article table: the table, and the rows a batch
    /// touches through either tower (candidate ids and history ids), which its lazy AdamW steps.
    /// </summary>
    readonly (DeviceVariable Table, RowGroups Touched)? sharedTable;
    /// <summary>The model's repeat bias and the batch's entries of it (null without one).</summary>
    readonly (DeviceVariable Bias, RepeatBatch Entries)? repeat;

    /// <summary>Adam steps taken so far (t in the bias correction).</summary>
    public int Step { get; private set; }

    /// <summary>
    /// Bias-corrected learning rate of each step from 1 (index 0 unused), a function of the step
    /// alone: computed and uploaded ahead for a whole epoch (<see cref="PrepareLearningRates"/>).
    /// </summary>
    readonly List<float> lrTByStep = [0f];

    /// <param name="startStep">Continue from a checkpoint taken after this many steps (every embedding row caught up), or 0.</param>
    public Trainer(TwoTowerModel model, IKernels kernels, TrainOptions options, TrainingColumns data, string itemColumn, int startStep = 0)
    {
        this.model = model;
        this.kernels = kernels;
        this.options = options;
        if (options.QueryIdDropout > 0 && data.Ints.TryGetValue(options.QueryIdColumn, out var ids))
        {
            queryIds = ids;
            data = data with { Ints = new Dictionary<string, int[]>(data.Ints) { [options.QueryIdColumn] = (int[])ids.Clone() } };
        }
        this.data = data;
        this.itemColumn = itemColumn;
        var items = data.Ints[itemColumn];
        // Sampling probability of an item as an in-batch candidate: its share of training rows.
        var counts = new Dictionary<int, int>();
        foreach (var i in items)
            counts[i] = counts.GetValueOrDefault(i) + 1;
        logQPerRow = kernels.Upload(items.Select(i => (float)Math.Log((double)counts[i] / items.Length)).ToArray());
        var queryFeatures = model.Query.Inputs.Select(i => i.Feature).ToArray();
        var candidateFeatures = model.Candidate.Inputs.Select(i => i.Feature).ToArray();
        columns = new DeviceColumns(kernels, data, queryFeatures.Concat(candidateFeatures).Select(f => f.Column).Append(itemColumn));

        var b = options.BatchSize;
        Step = startStep;
        lrTBuffer = kernels.Allocate<float>(1);
        PrepareLearningRates(startStep);
        candidate = new DeviceTower(kernels, model.Candidate, b, startStep);
        if (model.Query.HistoryInput is { SharedEmbedding: true } shared)
            sharedTable = (candidate.Variables.Single(v => v.Host == shared.Embedding), new RowGroups(kernels, b * (1 + model.Query.History!.Length)));
        query = new DeviceTower(kernels, model.Query, b, startStep, sharedTable?.Table);
        if (model.RepeatBias is { } bias)
            repeat = (new DeviceVariable(kernels, bias, startStep), new RepeatBatch(kernels, b, bias.Cols,
                Math.Max(items.DefaultIfEmpty(0).Max(), data.Ints[Data.PurchaseHistory.Column].DefaultIfEmpty(0).Max()) + 1));
        // The shared table steps on the rows either tower touched; its candidate-only groups serve the gradient alone.
        embeddingInputs = query.EmbeddingGroups.Concat(candidate.EmbeddingGroups)
            .Select(e => sharedTable is { } s && e.Table == s.Table ? (e.Table, s.Touched) : e).ToArray();
        order = Enumerable.Range(0, data.RowCount).ToArray();
        orderBuffer = kernels.Upload(order);
        batchRows = kernels.Allocate<int>(b);
        batchItems = kernels.Allocate<int>(b);
        offsets = kernels.Allocate<float>(b);
        lossPerRow = kernels.Allocate<float>(b);
        losses = new float[b];
        var dim = model.Query.OutputDim;
        dq = kernels.Allocate<float>(b * dim);
        dc = kernels.Allocate<float>(b * dim);
    }

    public void Dispose()
    {
        columns.Dispose();
        foreach (var d in new IDisposable[] { logQPerRow, query, candidate, orderBuffer, batchRows, batchItems,
                     offsets, lossPerRow, dq, dc, lrTBuffer })
            d.Dispose();
        sharedTable?.Touched.Dispose();
        repeat?.Bias.Dispose();
        repeat?.Entries.Dispose();
    }

    IEnumerable<DeviceVariable> DeviceVariables => query.Variables.Concat(candidate.Variables).Concat(repeat is { Bias: var bias } ? [bias] : []);

    public int BatchesPerEpoch => (data.RowCount + options.BatchSize - 1) / options.BatchSize;

    /// <summary>
    /// The batches of an epoch as (start, length) into <see cref="order"/>. "batches": fixed batches
    /// of file order, their order shuffled; "rows": rows reshuffled. Derived from (seed, epoch) alone,
    /// so a resumed run sees the same order.
    /// </summary>
    int[] PlanEpoch(int epoch)
    {
        var rng = new Rng((ulong)options.Seed * 0x9E3779B97F4A7C15UL + (ulong)epoch + 1);
        var batches = Enumerable.Range(0, BatchesPerEpoch).ToArray();
        if (options.ShuffleRows)
        {
            for (var i = 0; i < order.Length; i++)
                order[i] = i;
            rng.Shuffle(order.AsSpan());
            kernels.CopyFromHost<int>(order, orderBuffer);
        }
        else
            rng.Shuffle(batches.AsSpan());
        if (queryIds != null)
            DropQueryIds(epoch);
        return batches;
    }

    /// <summary>
    /// This epoch's query ids: each row's own, or the unknown id with probability QueryIdDropout, from
    /// a generator of (seed, epoch) alone (a resumed run drops the same rows). The host copy groups
    /// the embedding rows, the device copy feeds the tower.
    /// </summary>
    void DropQueryIds(int epoch)
    {
        var rng = new Rng(((ulong)options.Seed * 0x9E3779B97F4A7C15UL + (ulong)epoch + 1) ^ 0xD1B54A32D192ED03UL);
        var dropped = data.Ints[options.QueryIdColumn];
        for (var r = 0; r < dropped.Length; r++)
            dropped[r] = rng.NextDouble() < options.QueryIdDropout ? Data.Vocabulary.OutOfVocabulary : queryIds![r];
        if (columns.Ints.TryGetValue(options.QueryIdColumn, out var onDevice))
            kernels.CopyFromHost<int>(dropped, onDevice);
    }

    /// <summary>Makes the learning rates of steps 1..lastStep available on the host and on the backend.</summary>
    void PrepareLearningRates(int lastStep)
    {
        if (lastStep < lrTByStep.Count)
            return;
        var known = lrTByStep.Count;
        while (lrTByStep.Count <= lastStep)
            lrTByStep.Add(LearningRateAt(lrTByStep.Count));
        var all = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(lrTByStep);
        if (lrTBuffer.Length < all.Length)
        {
            lrTBuffer.Dispose();
            lrTBuffer = kernels.Allocate<float>(2 * all.Length);
            known = 0;
        }
        kernels.CopyFromHost<float>(all[known..], lrTBuffer.Slice(known, all.Length - known));
    }

    float LearningRateAt(int step) => (float)(options.LearningRate * Math.Sqrt(1 - Math.Pow(options.Beta2, step)) / (1 - Math.Pow(options.Beta1, step)));

    /// <summary>
    /// Applies the pending zero-gradient steps to every embedding row (the weights are then exactly
    /// the dense AdamW's) and copies the weights and moments back into the model's host variables.
    /// </summary>
    public void CatchUp()
    {
        foreach (var v in DeviceVariables.Where(v => v.Host.IsEmbedding))
            CatchUp(v, v.AllRows);
        foreach (var v in DeviceVariables)
            v.CopyToHost();
    }

    void CatchUp(DeviceVariable v, DeviceBuffer<int> rows) =>
        kernels.AdamWCatchUp(v.Value, v.M!, v.V!, v.Host.Cols, rows, v.RowStep!, Step, lrTBuffer,
            (float)options.Beta1, (float)options.Beta2, (float)options.Epsilon, UntouchedDecay);

    /// <summary>Decay per step of an embedding row the batch did not touch: TF-Addons none, Keras lr·wd.</summary>
    float UntouchedDecay => options.KerasDecay ? (float)(options.LearningRate * options.WeightDecay) : 0f;

    /// <summary>
    /// One epoch; ends with <see cref="CatchUp"/>, so the host weights are complete for checkpoints and
    /// evaluation. The host groups the next batch's embedding ids while the backend runs this one.
    /// </summary>
    public EpochStats RunEpoch(int epoch, Action<int, int, double>? progress = null, CancellationToken cancel = default)
    {
        var watch = Stopwatch.StartNew();
        var batches = PlanEpoch(epoch);
        PrepareLearningRates(Step + batches.Length);
        (int Start, int Length) Batch(int s) => (batches[s] * options.BatchSize, Math.Min(options.BatchSize, data.RowCount - batches[s] * options.BatchSize));
        double total = 0;
        GroupEmbeddedIds(order.AsSpan(Batch(0).Start, Batch(0).Length));
        for (var s = 0; s < batches.Length; s++)
        {
            cancel.ThrowIfCancellationRequested();
            var (start, length) = Batch(s);
            QueueGradients(length, orderBuffer.Slice(start, length));
            ApplyAdamW();
            if (s + 1 < batches.Length)
                GroupEmbeddedIds(order.AsSpan(Batch(s + 1).Start, Batch(s + 1).Length));
            var loss = BatchLoss(length);
            if (!double.IsFinite(loss))
                throw new PipelineError(
                    $"the loss became {loss} at epoch {epoch}, step {s + 1} of {batches.Length}: the weights diverged. " +
                    $"Likely causes: train.learning_rate ({options.LearningRate}) too high, train.temperature ({options.Temperature}) too low, " +
                    "or non-finite input features.");
            total += loss;
            progress?.Invoke(s + 1, batches.Length, total / Math.Min(data.RowCount, (s + 1) * (double)options.BatchSize));
        }
        CatchUp();
        var seconds = watch.Elapsed.TotalSeconds;
        return new EpochStats(epoch, total / data.RowCount, total / batches.Length, seconds, data.RowCount / seconds);
    }

    /// <summary>One optimizer step on the given rows; returns the batch's summed loss. For the tests: they compare single steps with a float64 reference.</summary>
    internal double TrainStep(ReadOnlySpan<int> rows)
    {
        PrepareLearningRates(Step + 1);
        GroupEmbeddedIds(rows);
        QueueGradients(rows.Length, UploadRows(rows));
        ApplyAdamW();
        return BatchLoss(rows.Length);
    }

    /// <summary>Forward and backward on the given rows: fills every variable's gradient (see <see cref="Gradient"/>); returns the summed loss.</summary>
    internal double ComputeGradients(ReadOnlySpan<int> rows)
    {
        GroupEmbeddedIds(rows);
        QueueGradients(rows.Length, UploadRows(rows));
        return BatchLoss(rows.Length);
    }

    /// <summary>A variable's gradient from the last step, copied to the host (embeddings: valid on the rows the batch touched). For the tests.</summary>
    internal float[] Gradient(Variable v)
    {
        var grad = new float[v.Value.Length];
        kernels.CopyToHost(DeviceVariables.Single(d => d.Host == v).Grad!, grad);
        return grad;
    }

    DeviceBuffer<int> UploadRows(ReadOnlySpan<int> rows)
    {
        kernels.CopyFromHost(rows, batchRows);
        return batchRows.Slice(0, rows.Length);
    }

    /// <summary>Σ of the last batch's per-row losses (waits for the backend).</summary>
    double BatchLoss(int n)
    {
        kernels.CopyToHost(lossPerRow, losses.AsSpan(0, n));
        double loss = 0;
        for (var r = 0; r < n; r++)
            loss += losses[r];
        return loss;
    }

    /// <summary>The host part of a step: each embedded column's ids of the batch grouped by row (a shared table: also the union of its rows), the repeat bias's entries.</summary>
    void GroupEmbeddedIds(ReadOnlySpan<int> rows)
    {
        query.GroupEmbeddedIds(data, rows);
        candidate.GroupEmbeddedIds(data, rows);
        if (sharedTable is { Touched: var touched })
        {
            touched.Begin();
            touched.Add(data.Ints[itemColumn], 1, rows);
            touched.Add(data.Ints[Data.PurchaseHistory.Column], model.Query.History!.Length, rows);
            touched.Finish();
        }
        repeat?.Entries.Build(data.Ints[itemColumn], data.Ints[Data.PurchaseHistory.Column], rows);
    }

    /// <summary>Queues forward and backward of n rows (listed on the backend; their groups built by <see cref="GroupEmbeddedIds"/>).</summary>
    void QueueGradients(int n, DeviceBuffer<int> rows)
    {
        query.UploadGroups();
        candidate.UploadGroups();
        sharedTable?.Touched.Upload();
        // The batch's embedding rows first take the zero-gradient steps they missed: they are read as the dense update would have left them.
        foreach (var (table, groups) in embeddingInputs)
            CatchUp(table, groups.Rows);
        var q = query.Forward(columns, rows, n);
        var c = candidate.Forward(columns, rows, n);
        if (options.LogQCorrection)
            kernels.GatherRows(logQPerRow, rows, n, offsets);
        if (options.RemoveAccidentalHits)
            kernels.GatherRows(columns.Ints[itemColumn], rows, n, batchItems);
        kernels.InBatchSoftmax(q, c, n, model.Query.OutputDim, options.LogQCorrection ? offsets : null, (float)options.Temperature,
            options.RemoveAccidentalHits ? batchItems : null, lossPerRow, dq, dc, repeat?.Entries.Upload(repeat.Value.Bias.Value, repeat.Value.Bias.Grad!));
        // A shared table: the history-only rows start from zero, the candidate tower writes its rows, the history adds to both.
        if (sharedTable is { } shared)
            kernels.ZeroRows(shared.Table.Grad!, shared.Table.Host.Cols, query.HistoryGroups!.Rows);
        candidate.Backward(dc, n);
        query.Backward(dq, n);
    }

    /// <summary>
    /// AdamW on every variable. Embeddings are updated lazily but exactly: TF applies Adam densely
    /// (untouched rows still move with their momentum); the touched rows replay the steps they
    /// missed with zero gradients first, and <see cref="CatchUp"/> replays the rest. TF-Addons
    /// decays an embedding only on the rows its sparse gradient touched; Keras AdamW decays all.
    /// </summary>
    void ApplyAdamW()
    {
        Step++;
        var (b1, b2, eps) = ((float)options.Beta1, (float)options.Beta2, (float)options.Epsilon);
        var decay = (float)(options.KerasDecay ? options.LearningRate * options.WeightDecay : options.WeightDecay);
        foreach (var (table, groups) in embeddingInputs)
            kernels.AdamWRows(table.Value, table.Grad!, table.M!, table.V!, table.Host.Cols, groups.Rows, table.RowStep!,
                Step, lrTBuffer, b1, b2, eps, decay, UntouchedDecay);
        foreach (var (value, grad, m, v) in new[] { query.DenseBlock!.Value, candidate.DenseBlock!.Value })
            kernels.AdamW(value, grad, m, v, value.Length, lrTByStep[Step], b1, b2, eps, decay);
        if (repeat is { Bias: var bias })
            kernels.AdamW(bias.Value, bias.Grad!, bias.M!, bias.V!, bias.Host.Cols, lrTByStep[Step], b1, b2, eps, decay);
    }
}
