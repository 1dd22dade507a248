namespace TwoTower.Kernels;

/// <summary>
/// The op-level seam: every heavy computation of training and evaluation goes through one of
/// these ops, so another backend (ILGPU kernels) can replace <see cref="SimdKernels"/> without
/// touching the model. Matrices are dense row-major float32 spans; shapes are given explicitly.
/// Every op writes all of its outputs (tests poison them first).
/// </summary>
public interface IKernels
{
    string Name { get; }

    /// <summary>y[n×o] = x[n×i] · w[i×o] + b[o], then relu when asked.</summary>
    void DenseForward(ReadOnlySpan<float> x, int rows, int inDim, ReadOnlySpan<float> w, ReadOnlySpan<float> b, int outDim,
        bool relu, Span<float> y);

    /// <summary>
    /// Backward of <see cref="DenseForward"/> given dy (already multiplied by relu'): dw = xᵀ·dy,
    /// db = Σ_rows dy (both overwritten), and dx = dy · wᵀ when dx is not empty.
    /// </summary>
    void DenseBackward(ReadOnlySpan<float> x, int rows, int inDim, ReadOnlySpan<float> w, int outDim, ReadOnlySpan<float> dy,
        Span<float> dw, Span<float> db, Span<float> dx);

    /// <summary>dy[k] = 0 where y[k] ≤ 0 (relu' from the relu's output).</summary>
    void ReluBackward(ReadOnlySpan<float> y, Span<float> dy);

    /// <summary>x[r, offset..offset+dim) = table[ids[r], ..] for each row r of x (row width xStride).</summary>
    void EmbeddingGather(ReadOnlySpan<float> table, int dim, ReadOnlySpan<int> ids, Span<float> x, int xStride, int offset);

    /// <summary>grad[ids[r], ..] += dx[r, offset..offset+dim) for each row r (repeated ids accumulate).</summary>
    void EmbeddingScatterAdd(Span<float> grad, int dim, ReadOnlySpan<int> ids, ReadOnlySpan<float> dx, int dxStride, int offset);

    /// <summary>
    /// TFRS Retrieval loss with in-batch negatives, forward and backward in one pass:
    /// logits[i,j] = (q_i·c_j)/τ − columnOffset[j] (offset: log p_j for the logQ correction, or none);
    /// with accidental-hit removal, logits[i,j] = −∞ where itemIds[j] = itemIds[i] and j ≠ i.
    /// loss_i = logsumexp_j(logits[i,:]) − logits[i,i]. Writes lossPerRow, dq = ∂Σloss/∂q, dc = ∂Σloss/∂c.
    /// </summary>
    void InBatchSoftmax(ReadOnlySpan<float> q, ReadOnlySpan<float> c, int rows, int dim, ReadOnlySpan<float> columnOffset,
        float temperature, ReadOnlySpan<int> itemIds, Span<float> lossPerRow, Span<float> dq, Span<float> dc);

    /// <summary>
    /// One AdamW step on a variable (Keras Adam, epsilon not scaled):
    /// m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; w ← w − lrT · m / (√v + ε), preceded by w ← w − decay·w
    /// when decay is not 0.
    /// </summary>
    void AdamW(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float lrT, float beta1, float beta2,
        float epsilon, float decay);

    /// <summary>
    /// Lazy AdamW for an embedding table, exactly equal to applying <see cref="AdamW"/> to the whole
    /// table every step with zero gradients on untouched rows: rowStep[r] is the last step applied to
    /// row r. Each listed row first replays the zero-gradient steps rowStep[r]+1 .. step−1 (decay
    /// decayUntouched each), then takes step `step` with its gradient row of g (decay decayTouched),
    /// and rowStep[r] becomes step. lrTByStep[s] is the bias-corrected learning rate of step s.
    /// </summary>
    void AdamWRows(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, int rowWidth, ReadOnlySpan<int> rows,
        Span<int> rowStep, int step, ReadOnlySpan<float> lrTByStep, float beta1, float beta2, float epsilon,
        float decayTouched, float decayUntouched);

    /// <summary>
    /// Brings the listed rows of a lazily updated table up to `step` with zero-gradient steps (see
    /// <see cref="AdamWRows"/>): before a batch reads them, and for every row before the weights are saved.
    /// </summary>
    void AdamWCatchUp(Span<float> w, Span<float> m, Span<float> v, int rowWidth, ReadOnlySpan<int> rows, Span<int> rowStep, int step,
        ReadOnlySpan<float> lrTByStep, float beta1, float beta2, float epsilon, float decayUntouched);

    /// <summary>
    /// Exact full-catalogue rank counting: counts[i] = #{ j : q_i·c_j > q_i·p_i }, p_i the row's own
    /// positive item (strictly greater: ties favour the positive). Both dot products are computed the
    /// same way inside the backend, so a candidate identical to the positive ties exactly. A
    /// non-finite positive score gives counts[i] = −1 (a miss, never a hit).
    /// </summary>
    void CountScoresAbove(ReadOnlySpan<float> queries, int queryCount, ReadOnlySpan<float> candidates, int candidateCount, int dim,
        ReadOnlySpan<float> positives, Span<int> counts);
}
