namespace TwoTower.Kernels;

/// <summary>
/// The op-level seam: every heavy computation of training and evaluation goes through one of
/// these ops, so another backend (ILGPU kernels) can replace <see cref="SimdKernels"/> without
/// touching the model. Operands are <see cref="DeviceBuffer{T}"/>s that live on the backend across
/// calls (the trainer uploads the columns and weights once; per step only the embedding-row groups
/// go in and the losses come out); matrices are dense row-major float32, shapes are given
/// explicitly and a buffer may be longer than its shape. Every op writes all of its outputs
/// (tests poison them first), and only them.
/// </summary>
public interface IKernels : IDisposable
{
    string Name { get; }

    // ---- memory ----

    /// <summary>A zero-filled buffer of `length` elements.</summary>
    DeviceBuffer<T> Allocate<T>(int length) where T : unmanaged;

    /// <summary>
    /// A buffer holding the array's contents. The SIMD backend uses the array itself (no copy, the
    /// ops then write into it); ILGPU copies it to the device. Read results back with <see cref="CopyToHost{T}"/>.
    /// </summary>
    DeviceBuffer<T> Upload<T>(T[] data) where T : unmanaged;

    /// <summary>target[0..source.Length) = source.</summary>
    void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> target) where T : unmanaged;

    /// <summary>target = source[0..target.Length), after every op queued before it has finished.</summary>
    void CopyToHost<T>(DeviceBuffer<T> source, Span<T> target) where T : unmanaged;

    // ---- batch assembly: a batch is a list of rows of the resident columns ----

    /// <summary>target[r] = source[rows[r]] for r &lt; count.</summary>
    void GatherRows(DeviceBuffer<int> source, DeviceBuffer<int> rows, int count, DeviceBuffer<int> target);

    /// <inheritdoc cref="GatherRows(DeviceBuffer{int}, DeviceBuffer{int}, int, DeviceBuffer{int})"/>
    void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> rows, int count, DeviceBuffer<float> target);

    /// <summary>x[r, offset + k] = (k == column[rows[r]]) ? 1 : 0 for k &lt; depth (an id ≥ depth gives all zeros).</summary>
    void OneHot(DeviceBuffer<int> column, DeviceBuffer<int> rows, int count, int depth, DeviceBuffer<float> x, int xStride, int offset);

    /// <summary>x[r, offset] = values[rows[r]].</summary>
    void CopyToColumn(DeviceBuffer<float> values, DeviceBuffer<int> rows, int count, DeviceBuffer<float> x, int xStride, int offset);

    // ---- layers ----

    /// <summary>y[n×o] = x[n×i] · w[i×o] + b[o], then relu when asked.</summary>
    void DenseForward(DeviceBuffer<float> x, int rows, int inDim, DeviceBuffer<float> w, DeviceBuffer<float> b, int outDim,
        bool relu, DeviceBuffer<float> y);

    /// <summary>
    /// Backward of <see cref="DenseForward"/> given dy (already multiplied by relu'): dw = xᵀ·dy,
    /// db = Σ_rows dy (both overwritten), and dx = dy · wᵀ when dx is not null.
    /// </summary>
    void DenseBackward(DeviceBuffer<float> x, int rows, int inDim, DeviceBuffer<float> w, int outDim, DeviceBuffer<float> dy,
        DeviceBuffer<float> dw, DeviceBuffer<float> db, DeviceBuffer<float>? dx);

    /// <summary>dy[k] = 0 where y[k] ≤ 0 for k &lt; count (relu' from the relu's output).</summary>
    void ReluBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, int count);

    /// <summary>x[r, offset..offset+dim) = table[column[rows[r]], ..] for r &lt; count (row width xStride).</summary>
    void EmbeddingGather(DeviceBuffer<float> table, int dim, DeviceBuffer<int> column, DeviceBuffer<int> rows, int count, DeviceBuffer<float> x,
        int xStride, int offset);

    /// <summary>
    /// The gradient of an embedding table on the rows a batch touched, grouped by row (see
    /// <see cref="RowGroups"/>): grad[groups.Rows[u], ..] = Σ dx[p, offset..offset+dim) over the batch
    /// positions p of group u, added from zero in batch order (deterministic). Other rows are not written.
    /// </summary>
    void EmbeddingRowGradients(DeviceBuffer<float> dx, int dxStride, int offset, int dim, RowGroups groups, DeviceBuffer<float> grad);

    /// <summary>
    /// The forward of a pooled bag of embeddings (the query tower's purchase history): row r's bag is
    /// ids[rows[r]·bagLength ..+bagLength), an id &lt; 0 an empty slot. With S = Σ slotWeights[j] over
    /// the filled slots, weights[r·bagLength + j] = slotWeights[j] / S (0 for an empty slot) and
    /// x[r, offset..offset+dim) = Σ_j weights[r, j] · table[ids[j], ..], added in slot order; a bag
    /// with no filled slot gives zeros. Writes weights (count × bagLength), used by the backward.
    /// </summary>
    void EmbeddingBagGather(DeviceBuffer<float> table, int dim, DeviceBuffer<int> ids, int bagLength, DeviceBuffer<float> slotWeights,
        DeviceBuffer<int> rows, int count, DeviceBuffer<float> x, int xStride, int offset, DeviceBuffer<float> weights);

    /// <summary>
    /// The backward of <see cref="EmbeddingBagGather"/> on the rows a batch touched, grouped by row
    /// (a group's positions are e = r·bagLength + j, filled slots only; see <see cref="RowGroups.Add"/>):
    /// s_u = Σ weights[e] · dx[e / bagLength, offset..offset+dim) over group u's positions, added from
    /// zero in position order; grad[groups.Rows[u], ..] = s_u, or += s_u when accumulate (a table
    /// shared with another input, whose gradient is already there). Other rows are not written.
    /// </summary>
    void EmbeddingBagRowGradients(DeviceBuffer<float> dx, int dxStride, int offset, int dim, DeviceBuffer<float> weights, int bagLength,
        RowGroups groups, bool accumulate, DeviceBuffer<float> grad);

    /// <summary>table[rows[i], 0..rowWidth) = 0 for every listed row.</summary>
    void ZeroRows(DeviceBuffer<float> table, int rowWidth, DeviceBuffer<int> rows);

    /// <summary>
    /// TFRS Retrieval loss with in-batch negatives, forward and backward in one pass:
    /// logits[i,j] = (q_i·c_j)/τ − columnOffset[j] (offset: log p_j for the logQ correction, or null),
    /// plus the repeat bias's entries (see <see cref="RepeatLogits"/>, or null);
    /// with accidental-hit removal (itemIds not null), logits[i,j] = −∞ where itemIds[j] = itemIds[i] and j ≠ i.
    /// loss_i = logsumexp_j(logits[i,:]) − logits[i,i]. Writes lossPerRow, dq = ∂Σloss/∂q, dc = ∂Σloss/∂c,
    /// and the repeat bias's gradient.
    /// </summary>
    void InBatchSoftmax(DeviceBuffer<float> q, DeviceBuffer<float> c, int rows, int dim, DeviceBuffer<float>? columnOffset,
        float temperature, DeviceBuffer<int>? itemIds, DeviceBuffer<float> lossPerRow, DeviceBuffer<float> dq, DeviceBuffer<float> dc,
        RepeatLogits? repeat = null);

    // ---- optimizer ----

    /// <summary>
    /// One AdamW step on the first `count` elements of a variable (Keras Adam, epsilon not scaled):
    /// m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; w ← w − lrT · m / (√v + ε), preceded by w ← w − decay·w
    /// when decay is not 0.
    /// </summary>
    void AdamW(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, float lrT,
        float beta1, float beta2, float epsilon, float decay);

    /// <summary>
    /// Lazy AdamW for an embedding table, exactly equal to applying <see cref="AdamW"/> to the whole
    /// table every step with zero gradients on untouched rows: rowStep[r] is the last step applied to
    /// row r. Each listed row (all of `rows`, distinct) first replays the zero-gradient steps
    /// rowStep[r]+1 .. step−1 (decay decayUntouched each), then takes step `step` with its gradient
    /// row of g (decay decayTouched), and rowStep[r] becomes step. lrTByStep[s] is the bias-corrected
    /// learning rate of step s.
    /// </summary>
    void AdamWRows(DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth,
        DeviceBuffer<int> rows, DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2,
        float epsilon, float decayTouched, float decayUntouched);

    /// <summary>
    /// Brings the listed rows of a lazily updated table up to `step` with zero-gradient steps (see
    /// <see cref="AdamWRows"/>): before a batch reads them, and for every row before the weights are saved.
    /// </summary>
    void AdamWCatchUp(DeviceBuffer<float> w, DeviceBuffer<float> m, DeviceBuffer<float> v, int rowWidth, DeviceBuffer<int> rows,
        DeviceBuffer<int> rowStep, int step, DeviceBuffer<float> lrTByStep, float beta1, float beta2, float epsilon, float decayUntouched);

    // ---- evaluation ----

    /// <summary>
    /// Exact full-catalogue rank counting: counts[i] = #{ j : q_i·c_j > q_i·p_i }, p_i the row's own
    /// positive item (strictly greater: ties favour the positive). Both dot products are computed the
    /// same way inside the backend, so a candidate identical to the positive ties exactly. A
    /// non-finite positive score gives counts[i] = −1 (a miss, never a hit).
    /// </summary>
    void CountScoresAbove(DeviceBuffer<float> queries, int queryCount, DeviceBuffer<float> candidates, int candidateCount, int dim,
        DeviceBuffer<float> positives, DeviceBuffer<int> counts);

    /// <summary>
    /// Exact top-k: for each query i, the k candidates with the highest q_i·c_j, best first, ties to
    /// the lower index, a NaN score counting as −∞ (and written as −∞). Writes indices[i·k + r] and
    /// scores[i·k + r] for r &lt; k; k ≤ candidateCount. Scores are the backend's own dot products
    /// (the SIMD backend's equal <see cref="SimdKernels.ScoreDot"/>).
    /// </summary>
    void TopK(DeviceBuffer<float> queries, int queryCount, DeviceBuffer<float> candidates, int candidateCount, int dim, int k,
        DeviceBuffer<int> indices, DeviceBuffer<float> scores);
}

/// <summary>
/// The repeat-purchase term of the in-batch logits, a sparse matrix by row: row i's entries
/// e in RowStarts[i]..RowStarts[i+1) add Bias[Slots[e]] to logit (i, Columns[e]), after the
/// temperature and the offset (column j's article is at slot s of row i's purchase history).
/// The softmax writes BiasGradient[s] = Σ ∂Σloss/∂logit(i, Columns[e]) over the entries of slot s,
/// for every s &lt; SlotCount (0 for a slot without entries).
/// </summary>
public sealed record RepeatLogits(DeviceBuffer<int> RowStarts, DeviceBuffer<int> Columns, DeviceBuffer<int> Slots, int EntryCount,
    DeviceBuffer<float> Bias, int SlotCount, DeviceBuffer<float> BiasGradient);
