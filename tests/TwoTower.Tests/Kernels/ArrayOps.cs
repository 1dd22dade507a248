using TwoTower.Kernels;

namespace TwoTower.Tests.Kernels;

/// <summary>
/// A backend's ops called on host arrays, for the kernel tests: every operand goes to the backend
/// (outputs with their poisoned contents), the op runs, and the outputs are copied back into the arrays.
/// </summary>
public sealed class ArrayOps(IKernels kernels)
{
    readonly List<IDisposable> buffers = [];

    DeviceBuffer<T> In<T>(T[] data) where T : unmanaged
    {
        var buffer = kernels.Upload(data);
        buffers.Add(buffer);
        return buffer;
    }

    void Out<T>(DeviceBuffer<T> buffer, T[] target) where T : unmanaged => kernels.CopyToHost(buffer, target);

    void Release()
    {
        foreach (var b in buffers)
            b.Dispose();
        buffers.Clear();
    }

    public void GatherRows(int[] source, int[] rows, int[] target)
    {
        var t = In(target);
        kernels.GatherRows(In(source), In(rows), rows.Length, t);
        Out(t, target);
        Release();
    }

    public void GatherRows(float[] source, int[] rows, float[] target)
    {
        var t = In(target);
        kernels.GatherRows(In(source), In(rows), rows.Length, t);
        Out(t, target);
        Release();
    }

    public void OneHot(int[] column, int[] rows, int depth, float[] x, int stride, int offset)
    {
        var vx = In(x);
        kernels.OneHot(In(column), In(rows), rows.Length, depth, vx, stride, offset);
        Out(vx, x);
        Release();
    }

    public void CopyToColumn(float[] values, int[] rows, float[] x, int stride, int offset)
    {
        var vx = In(x);
        kernels.CopyToColumn(In(values), In(rows), rows.Length, vx, stride, offset);
        Out(vx, x);
        Release();
    }

    public void DenseForward(float[] x, int rows, int inDim, float[] w, float[] b, int outDim, bool relu, float[] y)
    {
        var vy = In(y);
        kernels.DenseForward(In(x), rows, inDim, In(w), In(b), outDim, relu, vy);
        Out(vy, y);
        Release();
    }

    public void DenseBackward(float[] x, int rows, int inDim, float[] w, int outDim, float[] dy, float[] dw, float[] db, float[] dx)
    {
        var (vdw, vdb, vdx) = (In(dw), In(db), In(dx));
        kernels.DenseBackward(In(x), rows, inDim, In(w), outDim, In(dy), vdw, vdb, vdx);
        Out(vdw, dw);
        Out(vdb, db);
        Out(vdx, dx);
        Release();
    }

    public void ReluBackward(float[] y, float[] dy)
    {
        var vdy = In(dy);
        kernels.ReluBackward(In(y), vdy, dy.Length);
        Out(vdy, dy);
        Release();
    }

    public void EmbeddingGather(float[] table, int dim, int[] column, int[] rows, float[] x, int stride, int offset)
    {
        var vx = In(x);
        kernels.EmbeddingGather(In(table), dim, In(column), In(rows), rows.Length, vx, stride, offset);
        Out(vx, x);
        Release();
    }

    /// <summary>The embedding gradient of a batch whose ids are `ids` (grouped here, as the trainer does).</summary>
    public void EmbeddingRowGradients(float[] dx, int stride, int offset, int dim, int[] ids, float[] grad)
    {
        using var groups = new RowGroups(kernels, ids.Length);
        groups.Build(ids, Enumerable.Range(0, ids.Length).ToArray());
        groups.Upload();
        var vgrad = In(grad);
        kernels.EmbeddingRowGradients(In(dx), stride, offset, dim, groups, vgrad);
        Out(vgrad, grad);
        Release();
    }

    public void EmbeddingBagGather(float[] table, int dim, int[] ids, int bagLength, float[] slotWeights, int[] rows, float[] x, int stride, int offset,
        float[] weights)
    {
        var (vx, vw) = (In(x), In(weights));
        kernels.EmbeddingBagGather(In(table), dim, In(ids), bagLength, In(slotWeights), In(rows), rows.Length, vx, stride, offset, vw);
        Out(vx, x);
        Out(vw, weights);
        Release();
    }

    /// <summary>The bag gradient of a batch whose bags are ids[rows[p]·bagLength ..] (grouped here, as the trainer does).</summary>
    public void EmbeddingBagRowGradients(float[] dx, int stride, int offset, int dim, float[] weights, int[] ids, int bagLength, int[] rows,
        bool accumulate, float[] grad)
    {
        using var groups = new RowGroups(kernels, rows.Length * bagLength);
        groups.Build(ids, bagLength, rows);
        groups.Upload();
        var vgrad = In(grad);
        kernels.EmbeddingBagRowGradients(In(dx), stride, offset, dim, In(weights), bagLength, groups, accumulate, vgrad);
        Out(vgrad, grad);
        Release();
    }

    public void ZeroRows(float[] table, int width, int[] rows)
    {
        var vtable = In(table);
        kernels.ZeroRows(vtable, width, In(rows));
        Out(vtable, table);
        Release();
    }

    /// <param name="repeat">The repeat bias's entries as CSR by row (see <see cref="RepeatLogits"/>); BiasGradient receives its gradient.</param>
    public void InBatchSoftmax(float[] q, float[] c, int rows, int dim, float[]? offset, float temperature, int[]? ids,
        float[] loss, float[] dq, float[] dc,
        (int[] RowStarts, int[] Columns, int[] Slots, float[] Bias, float[] BiasGradient)? repeat = null)
    {
        var (vloss, vdq, vdc) = (In(loss), In(dq), In(dc));
        var repeatLogits = repeat is { } r
            ? new RepeatLogits(In(r.RowStarts), In(r.Columns.Length == 0 ? [0] : r.Columns), In(r.Slots.Length == 0 ? [0] : r.Slots), r.Columns.Length,
                In(r.Bias), r.Bias.Length, In(r.BiasGradient))
            : null;
        kernels.InBatchSoftmax(In(q), In(c), rows, dim, offset == null ? null : In(offset), temperature, ids == null ? null : In(ids), vloss, vdq, vdc,
            repeatLogits);
        Out(vloss, loss);
        Out(vdq, dq);
        Out(vdc, dc);
        if (repeat is { } done)
            Out(repeatLogits!.BiasGradient, done.BiasGradient);
        Release();
    }

    public void AdamW(float[] w, float[] g, float[] m, float[] v, float lrT, float beta1, float beta2, float epsilon, float decay)
    {
        var (vw, vm, vv) = (In(w), In(m), In(v));
        kernels.AdamW(vw, In(g), vm, vv, w.Length, lrT, beta1, beta2, epsilon, decay);
        Out(vw, w);
        Out(vm, m);
        Out(vv, v);
        Release();
    }

    public void AdamWRows(float[] w, float[] g, float[] m, float[] v, int cols, int[] rows, int[] rowStep, int step, float[] lrT,
        float beta1, float beta2, float epsilon, float decayTouched, float decayUntouched)
    {
        var (vw, vm, vv, vs) = (In(w), In(m), In(v), In(rowStep));
        kernels.AdamWRows(vw, In(g), vm, vv, cols, In(rows), vs, step, In(lrT), beta1, beta2, epsilon, decayTouched, decayUntouched);
        Out(vw, w);
        Out(vm, m);
        Out(vv, v);
        Out(vs, rowStep);
        Release();
    }

    public void AdamWCatchUp(float[] w, float[] m, float[] v, int cols, int[] rows, int[] rowStep, int step, float[] lrT,
        float beta1, float beta2, float epsilon, float decayUntouched)
    {
        var (vw, vm, vv, vs) = (In(w), In(m), In(v), In(rowStep));
        kernels.AdamWCatchUp(vw, vm, vv, cols, In(rows), vs, step, In(lrT), beta1, beta2, epsilon, decayUntouched);
        Out(vw, w);
        Out(vm, m);
        Out(vv, v);
        Out(vs, rowStep);
        Release();
    }

    public void CountScoresAbove(float[] queries, int queryCount, float[] candidates, int candidateCount, int dim, float[] positives, int[] counts)
    {
        var vc = In(counts);
        kernels.CountScoresAbove(In(queries), queryCount, In(candidates), candidateCount, dim, In(positives), vc);
        Out(vc, counts);
        Release();
    }

    public void TopK(float[] queries, int queryCount, float[] candidates, int candidateCount, int dim, int k, int[] indices, float[] scores)
    {
        var (vi, vs) = (In(indices), In(scores));
        kernels.TopK(In(queries), queryCount, In(candidates), candidateCount, dim, k, vi, vs);
        Out(vi, indices);
        Out(vs, scores);
        Release();
    }
}
