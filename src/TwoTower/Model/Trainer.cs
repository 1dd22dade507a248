using System.Diagnostics;
using TwoTower.Config;
using TwoTower.Kernels;

namespace TwoTower.Model;

public sealed record TrainOptions(
    int Epochs, int BatchSize, double LearningRate, double WeightDecay, bool KerasDecay,
    double Beta1, double Beta2, double Epsilon, bool ShuffleRows, double Temperature,
    bool LogQCorrection, bool RemoveAccidentalHits, long Seed)
{
    public static TrainOptions From(PipelineConfig c) => new(
        (int)c.Int("train.epochs"), (int)c.Int("train.batch_size"), c.Float("train.learning_rate"),
        c.Float("train.weight_decay"), c.Str("train.weight_decay_convention") == "keras",
        c.Float("train.beta1"), c.Float("train.beta2"), c.Float("train.epsilon"), c.Str("train.shuffle") == "rows",
        c.Float("train.temperature"), c.Bool("train.logq_correction"), c.Bool("train.remove_accidental_hits"), c.Int("seed"));
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
        c.Str("train.early_stopping_metric") == "none" ? null
            : new EarlyStopping(c.Str("train.early_stopping_metric"), (int)c.Int("train.early_stopping_patience"));

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
/// </summary>
public sealed class Trainer
{
    readonly TwoTowerModel model;
    readonly IKernels kernels;
    public IKernels Kernels => kernels;
    readonly TrainOptions options;
    readonly TrainingColumns data;
    readonly int[] items;
    readonly float[] logQPerRow;

    // Batch buffers, allocated once.
    readonly TowerBatch queryBatch = new();
    readonly TowerBatch candidateBatch = new();
    readonly int[] order;
    readonly float[] offsets, lossPerRow, dq, dc;
    readonly int[] batchItems;
    readonly Data.Feature[] queryFeatures, candidateFeatures;
    readonly (Variable Embedding, string Column, TowerBatch Batch)[] embeddingInputs;

    /// <summary>Adam steps taken so far (t in the bias correction).</summary>
    public int Step { get; private set; }

    /// <summary>Bias-corrected learning rate of each step 1..Step (index 0 unused).</summary>
    readonly List<float> lrTByStep = [0f];

    public Trainer(TwoTowerModel model, IKernels kernels, TrainOptions options, TrainingColumns data, string itemColumn)
    {
        this.model = model;
        this.kernels = kernels;
        this.options = options;
        this.data = data;
        items = data.Ints[itemColumn];
        // Sampling probability of an item as an in-batch candidate: its share of training rows.
        var counts = new Dictionary<int, int>();
        foreach (var i in items)
            counts[i] = counts.GetValueOrDefault(i) + 1;
        logQPerRow = items.Select(i => (float)Math.Log((double)counts[i] / items.Length)).ToArray();
        order = Enumerable.Range(0, data.RowCount).ToArray();
        queryFeatures = model.Query.Inputs.Select(i => i.Feature).ToArray();
        candidateFeatures = model.Candidate.Inputs.Select(i => i.Feature).ToArray();
        embeddingInputs = model.Query.Inputs.Select(i => (i, queryBatch)).Concat(model.Candidate.Inputs.Select(i => (i, candidateBatch)))
            .Where(x => x.i.Embedding != null).Select(x => (x.i.Embedding!, x.i.Feature.Column, x.Item2)).ToArray();
        var b = options.BatchSize;
        offsets = new float[b];
        lossPerRow = new float[b];
        batchItems = new int[b];
        var dim = model.Query.OutputDim;
        dq = new float[b * dim];
        dc = new float[b * dim];
    }

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
        }
        else
            rng.Shuffle(batches.AsSpan());
        return batches;
    }

    float LearningRateAt(int step) => (float)(options.LearningRate * Math.Sqrt(1 - Math.Pow(options.Beta2, step)) / (1 - Math.Pow(options.Beta1, step)));

    /// <summary>Continues from a checkpoint taken after `step` steps (every embedding row caught up).</summary>
    public void ResumeAt(int step)
    {
        Step = step;
        lrTByStep.Clear();
        lrTByStep.Add(0f);
        for (var s = 1; s <= step; s++)
            lrTByStep.Add(LearningRateAt(s));
        foreach (var v in model.Variables.Where(v => v.IsEmbedding))
            Array.Fill(v.RowStep, step);
    }

    /// <summary>Applies the pending zero-gradient steps to every embedding row: the weights are then exactly the dense AdamW's.</summary>
    public void CatchUp()
    {
        foreach (var v in model.Variables.Where(v => v.IsEmbedding))
            CatchUp(v, v.AllRows);
    }

    void CatchUp(Variable v, ReadOnlySpan<int> rows) =>
        kernels.AdamWCatchUp(v.Value, v.M, v.V, v.Cols, rows, v.RowStep, Step, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(lrTByStep),
            (float)options.Beta1, (float)options.Beta2, (float)options.Epsilon, UntouchedDecay);

    /// <summary>Decay per step of an embedding row the batch did not touch: TF-Addons none, Keras lr·wd.</summary>
    float UntouchedDecay => options.KerasDecay ? (float)(options.LearningRate * options.WeightDecay) : 0f;

    /// <summary>One epoch; ends with <see cref="CatchUp"/>, so the weights are complete for checkpoints and evaluation.</summary>
    public EpochStats RunEpoch(int epoch, Action<int, int, double>? progress = null, CancellationToken cancel = default)
    {
        var watch = Stopwatch.StartNew();
        var batches = PlanEpoch(epoch);
        double total = 0;
        for (var s = 0; s < batches.Length; s++)
        {
            cancel.ThrowIfCancellationRequested();
            var start = batches[s] * options.BatchSize;
            var length = Math.Min(options.BatchSize, data.RowCount - start);
            var loss = TrainStep(order.AsSpan(start, length));
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

    /// <summary>One optimizer step on the given rows; returns the batch's summed loss.</summary>
    public double TrainStep(ReadOnlySpan<int> rows)
    {
        var loss = ComputeGradients(rows);
        ApplyAdamW();
        return loss;
    }

    /// <summary>Forward and backward on the given rows: fills every variable's gradient; returns the summed loss.</summary>
    public double ComputeGradients(ReadOnlySpan<int> rows)
    {
        var n = rows.Length;
        queryBatch.Fill(data, queryFeatures, rows);
        candidateBatch.Fill(data, candidateFeatures, rows);
        // The batch's embedding rows first take the zero-gradient steps they missed: they are read as the dense update would have left them.
        foreach (var (embedding, column, batch) in embeddingInputs)
        {
            embedding.MarkTouched(batch.Ids(column));
            CatchUp(embedding, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(embedding.TouchedRows));
        }
        var q = model.Query.Forward(kernels, queryBatch);
        var c = model.Candidate.Forward(kernels, candidateBatch);
        for (var r = 0; r < n; r++)
        {
            offsets[r] = logQPerRow[rows[r]];
            batchItems[r] = items[rows[r]];
        }
        var dim = model.Query.OutputDim;
        kernels.InBatchSoftmax(q, c, n, dim, options.LogQCorrection ? offsets.AsSpan(0, n) : [],
            (float)options.Temperature, options.RemoveAccidentalHits ? batchItems.AsSpan(0, n) : [],
            lossPerRow.AsSpan(0, n), dq.AsSpan(0, n * dim), dc.AsSpan(0, n * dim));
        double loss = 0;
        for (var r = 0; r < n; r++)
            loss += lossPerRow[r];
        model.Query.Backward(kernels, queryBatch, dq.AsSpan(0, n * dim));
        model.Candidate.Backward(kernels, candidateBatch, dc.AsSpan(0, n * dim));
        return loss;
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
        lrTByStep.Add(LearningRateAt(Step));
        var (b1, b2, eps) = ((float)options.Beta1, (float)options.Beta2, (float)options.Epsilon);
        var decay = (float)(options.KerasDecay ? options.LearningRate * options.WeightDecay : options.WeightDecay);
        var lrT = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(lrTByStep);
        foreach (var v in model.Variables)
        {
            if (v.IsEmbedding)
            {
                kernels.AdamWRows(v.Value, v.Grad, v.M, v.V, v.Cols, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(v.TouchedRows),
                    v.RowStep, Step, lrT, b1, b2, eps, decay, UntouchedDecay);
                v.ClearTouched();
            }
            else
                kernels.AdamW(v.Value, v.Grad, v.M, v.V, lrT[Step], b1, b2, eps, decay);
        }
    }
}
