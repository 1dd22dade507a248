using TwoTower.Data;
using TwoTower.Model;

using TwoTower.Tests.Kernels;

namespace TwoTower.Tests;

/// <summary>
/// The whole two-tower loss and its gradients in float64 plain loops, on parameters copied from
/// a <see cref="TwoTowerModel"/>. Used for the gradient check and the golden training test.
/// </summary>
public sealed class ReferenceModel
{
    readonly TwoTowerModel layout;
    public Dictionary<string, double[]> Params { get; }

    public ReferenceModel(TwoTowerModel model)
    {
        layout = model;
        Params = model.Variables.ToDictionary(v => v.Name, v => v.Value.Select(x => (double)x).ToArray());
    }

    sealed record TowerPass(double[] X, List<double[]> Outputs);

    TowerPass Forward(Tower tower, TrainingColumns data, int[] rows)
    {
        var n = rows.Length;
        var x = new double[n * tower.InputDim];
        for (var r = 0; r < n; r++)
        foreach (var input in tower.Inputs)
        {
            var at = r * tower.InputDim + input.Offset;
            switch (input.Feature.Kind)
            {
                case FeatureKind.Embedded:
                    var table = Params[input.Embedding!.Name];
                    var id = data.Ints[input.Feature.Column][rows[r]];
                    for (var d = 0; d < input.Width; d++)
                        x[at + d] = table[id * input.Width + d];
                    break;
                case FeatureKind.History:
                    var history = Params[input.Embedding!.Name];
                    foreach (var (article, weight) in Bag(tower, data, rows[r]))
                    {
                        for (var d = 0; d < input.Width; d++)
                            x[at + d] += weight * history[article * input.Width + d];
                    }
                    break;
                case FeatureKind.OneHot:
                    var k = data.Ints[input.Feature.Column][rows[r]];
                    if (k < input.Width)
                        x[at + k] = 1;
                    break;
                default:
                    x[at] = data.Floats[input.Feature.Column][rows[r]];
                    break;
            }
        }
        var outputs = new List<double[]>();
        var current = x;
        for (var l = 0; l < tower.LayerWeights.Count; l++)
        {
            var w = Params[tower.LayerWeights[l].Name];
            var b = Params[tower.Biases[l].Name];
            var (inDim, outDim) = (tower.LayerWeights[l].Rows, tower.LayerWeights[l].Cols);
            var y = new double[n * outDim];
            for (var r = 0; r < n; r++)
            for (var o = 0; o < outDim; o++)
            {
                var s = b[o];
                for (var i = 0; i < inDim; i++)
                    s += current[r * inDim + i] * w[i * outDim + o];
                y[r * outDim + o] = l < tower.LayerWeights.Count - 1 ? Math.Max(0, s) : s;
            }
            outputs.Add(y);
            current = y;
        }
        return new TowerPass(x, outputs);
    }

    void Backward(Tower tower, TrainingColumns data, int[] rows, TowerPass pass, double[] dOut, Dictionary<string, double[]> grads)
    {
        var n = rows.Length;
        var delta = dOut;
        for (var l = tower.LayerWeights.Count - 1; l >= 0; l--)
        {
            var (inDim, outDim) = (tower.LayerWeights[l].Rows, tower.LayerWeights[l].Cols);
            var input = l == 0 ? pass.X : pass.Outputs[l - 1];
            var w = Params[tower.LayerWeights[l].Name];
            var dw = grads[tower.LayerWeights[l].Name];
            var db = grads[tower.Biases[l].Name];
            var dx = new double[n * inDim];
            for (var r = 0; r < n; r++)
            for (var o = 0; o < outDim; o++)
            {
                var g = delta[r * outDim + o];
                db[o] += g;
                for (var i = 0; i < inDim; i++)
                {
                    dw[i * outDim + o] += input[r * inDim + i] * g;
                    dx[r * inDim + i] += w[i * outDim + o] * g;
                }
            }
            if (l > 0)
            {
                for (var i = 0; i < dx.Length; i++)
                    dx[i] = input[i] > 0 ? dx[i] : 0;
            }
            delta = dx;
        }
        foreach (var input in tower.Inputs.Where(i => i.Embedding != null))
        {
            var g = grads[input.Embedding!.Name];
            for (var r = 0; r < n; r++)
            {
                var bag = input.Feature.Kind == FeatureKind.History ? Bag(tower, data, rows[r]) : [(data.Ints[input.Feature.Column][rows[r]], 1.0)];
                foreach (var (id, weight) in bag)
                {
                    for (var d = 0; d < input.Width; d++)
                        g[id * input.Width + d] += weight * delta[r * tower.InputDim + input.Offset + d];
                }
            }
        }
    }

    /// <summary>A row's history: its filled slots' articles with their pooling weights (slot weight over the filled slots' sum).</summary>
    static List<(int Article, double Weight)> Bag(Tower tower, TrainingColumns data, int row)
    {
        var length = tower.History!.Length;
        var slots = Enumerable.Range(0, length).Select(j => (Article: data.Ints[PurchaseHistory.Column][row * length + j], Slot: j))
            .Where(s => s.Article >= 0).ToList();
        var total = slots.Sum(s => tower.History.Recency ? 1.0 / (1 + s.Slot) : 1.0);
        return slots.Select(s => (s.Article, (tower.History.Recency ? 1.0 / (1 + s.Slot) : 1.0) / total)).ToList();
    }

    /// <summary>Summed batch loss and (when asked) the gradient of every variable.</summary>
    public (double Loss, Dictionary<string, double[]> Grads) LossAndGradients(TrainingColumns data, int[] rows, string itemColumn,
        bool logQ, double temperature, bool accidentalHits)
    {
        var qPass = Forward(layout.Query, data, rows);
        var cPass = Forward(layout.Candidate, data, rows);
        var items = data.Ints[itemColumn];
        var counts = items.GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count());
        var offsets = logQ ? rows.Select(r => Math.Log((double)counts[items[r]] / items.Length)).ToArray() : null;
        var ids = accidentalHits ? rows.Select(r => items[r]).ToArray() : null;
        var dim = layout.Query.OutputDim;
        // The repeat bias: row i's history slot s holds column j's article (plain loops over every (i, s, j)).
        (int Row, int Column, int Slot)[]? repeat = null;
        if (layout.RepeatBias is { Cols: var length })
        {
            var history = data.Ints[PurchaseHistory.Column];
            repeat = (from i in Enumerable.Range(0, rows.Length)
                      from s in Enumerable.Range(0, length)
                      from j in Enumerable.Range(0, rows.Length)
                      where history[rows[i] * length + s] == items[rows[j]]
                      select (i, j, s)).ToArray();
        }
        var (loss, dq, dc, biasGrad) = Reference.InBatchSoftmax(qPass.Outputs[^1], cPass.Outputs[^1], rows.Length, dim, offsets, temperature, ids,
            repeat, repeat == null ? null : Params[TwoTowerModel.RepeatBiasName]);
        var grads = Params.ToDictionary(p => p.Key, p => new double[p.Value.Length]);
        if (repeat != null)
            grads[TwoTowerModel.RepeatBiasName] = biasGrad;
        Backward(layout.Query, data, rows, qPass, dq, grads);
        Backward(layout.Candidate, data, rows, cPass, dc, grads);
        return (loss.Sum(), grads);
    }
}
