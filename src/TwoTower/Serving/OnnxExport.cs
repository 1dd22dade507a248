using Google.Protobuf;
using Onnx;
using TwoTower.Data;
using TwoTower.Model;

namespace TwoTower.Serving;

/// <summary>
/// Writes a tower as an ONNX model (opset 17) so it runs anywhere ONNX Runtime does. Inputs, one
/// per feature, named by column, shape [N]: categorical features as int64 vocabulary ids
/// (vocab.&lt;column&gt;.json beside the model: value i−1 has id i, unknown = 0); numeric features as
/// float raw values (normalized inside the graph with the training statistics; NaN takes the
/// mean); raw features as float, used as is; the purchase history (features.query.history) as
/// "history", int64 [N, length]: article vocabulary ids, most recent first, −1 in empty slots.
/// Output "embedding" [N, 16]. The graph is the tower itself: Gather (embeddings), OneHot, the
/// history's masked weighted mean, Concat, then MatMul + Add (+ Relu) per layer.
/// </summary>
public static class OnnxExport
{
    const int Float = (int)TensorProto.Types.DataType.Float;
    const int Int64 = (int)TensorProto.Types.DataType.Int64;

    public static void Write(Tower tower, IReadOnlyDictionary<string, NormalizationStats> normalization, string path)
    {
        var graph = new GraphProto { Name = tower.Name + "_tower" };
        var parts = new List<string>();
        foreach (var input in tower.Inputs)
        {
            var column = input.Feature.Column;
            switch (input.Feature.Kind)
            {
                case FeatureKind.Embedded:
                    graph.Input.Add(Value(column, Int64, ["N"]));
                    graph.Initializer.Add(Tensor($"{column}_table", [input.Embedding!.Rows, input.Embedding.Cols], input.Embedding.Value));
                    graph.Node.Add(Node("Gather", [$"{column}_table", column], $"{column}_embedded", ("axis", 0L)));
                    parts.Add($"{column}_embedded");
                    break;
                case FeatureKind.OneHot:
                    graph.Input.Add(Value(column, Int64, ["N"]));
                    graph.Initializer.Add(Int64Tensor($"{column}_depth", [], [input.Width]));
                    graph.Initializer.Add(Tensor($"{column}_off_on", [2], [0f, 1f]));
                    // Ids outside [0, depth) give all zeros, as tf.one_hot (the notebook's depth n).
                    graph.Node.Add(Node("OneHot", [column, $"{column}_depth", $"{column}_off_on"], $"{column}_one_hot", ("axis", -1L)));
                    parts.Add($"{column}_one_hot");
                    break;
                case FeatureKind.History:
                    graph.Input.Add(Value(column, Int64, ["N", tower.History!.Length.ToString()]));
                    parts.Add(PooledHistory(graph, input, tower.History));
                    break;
                default:
                    graph.Input.Add(Value(column, Float, ["N"]));
                    var current = column;
                    if (normalization.TryGetValue(column, out var stats))
                    {
                        graph.Initializer.Add(Tensor($"{column}_mean", [], [(float)stats.Mean]));
                        graph.Node.Add(Node("IsNaN", [column], $"{column}_missing"));
                        graph.Node.Add(Node("Where", [$"{column}_missing", $"{column}_mean", column], $"{column}_filled"));
                        current = $"{column}_filled";
                        if (stats.Normalized)
                        {
                            graph.Initializer.Add(Tensor($"{column}_std", [], [(float)stats.Std]));
                            graph.Node.Add(Node("Sub", [current, $"{column}_mean"], $"{column}_centered"));
                            graph.Node.Add(Node("Div", [$"{column}_centered", $"{column}_std"], $"{column}_normalized"));
                            current = $"{column}_normalized";
                        }
                    }
                    graph.Initializer.Add(Int64Tensor($"{column}_axes", [1], [1]));
                    graph.Node.Add(Node("Unsqueeze", [current, $"{column}_axes"], $"{column}_column"));
                    parts.Add($"{column}_column");
                    break;
            }
        }
        graph.Node.Add(Node("Concat", parts.ToArray(), "x0", ("axis", 1L)));
        var x = "x0";
        for (var l = 0; l < tower.LayerWeights.Count; l++)
        {
            var k = tower.LayerWeights[l];
            graph.Initializer.Add(Tensor($"dense_{l}_kernel", [k.Rows, k.Cols], k.Value));
            graph.Initializer.Add(Tensor($"dense_{l}_bias", [k.Cols], tower.Biases[l].Value));
            graph.Node.Add(Node("MatMul", [x, $"dense_{l}_kernel"], $"dense_{l}_matmul"));
            var last = l == tower.LayerWeights.Count - 1;
            var output = last ? "embedding" : $"dense_{l}_linear";
            graph.Node.Add(Node("Add", [$"dense_{l}_matmul", $"dense_{l}_bias"], output));
            if (!last)
            {
                graph.Node.Add(Node("Relu", [output], $"x{l + 1}"));
                x = $"x{l + 1}";
            }
        }
        graph.Output.Add(Value("embedding", Float, ["N", tower.OutputDim.ToString()]));
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "TwoTower",
            Graph = graph,
            DocString = $"{tower.Name} tower of a TwoTower model: inputs are vocabulary ids (int64) and raw numbers (float), one per feature",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        Pipeline.ArtifactStore.WriteAtomic(path, stream => model.WriteTo(stream));
    }

    /// <summary>
    /// The history bag as the kernels pool it: w = slot weight where the id ≥ 0, else 0; pooled =
    /// Σ_j (w_j / Σw) · table[id_j] (zeros for an empty bag). Returns the [N, dim] output's name.
    /// </summary>
    static string PooledHistory(GraphProto graph, TowerInput input, HistorySpec history)
    {
        var h = input.Feature.Column;
        graph.Initializer.Add(Tensor($"{h}_table", [input.Embedding!.Rows, input.Embedding.Cols], input.Embedding.Value));
        graph.Initializer.Add(Tensor($"{h}_slot_weights", [history.Length], history.SlotWeights));
        graph.Initializer.Add(Int64Tensor($"{h}_empty", [], [-1]));
        graph.Initializer.Add(Int64Tensor($"{h}_first_row", [], [0]));
        graph.Initializer.Add(Tensor($"{h}_tiny", [], [float.Epsilon]));
        graph.Initializer.Add(Int64Tensor($"{h}_slot_axis", [1], [1]));
        graph.Initializer.Add(Int64Tensor($"{h}_dim_axis", [1], [2]));
        graph.Node.Add(Node("Max", [h, $"{h}_first_row"], $"{h}_rows"));
        graph.Node.Add(Node("Gather", [$"{h}_table", $"{h}_rows"], $"{h}_embedded", ("axis", 0L)));
        graph.Node.Add(Node("Greater", [h, $"{h}_empty"], $"{h}_filled"));
        graph.Node.Add(Node("Cast", [$"{h}_filled"], $"{h}_mask", ("to", (long)Float)));
        graph.Node.Add(Node("Mul", [$"{h}_mask", $"{h}_slot_weights"], $"{h}_weights"));
        graph.Node.Add(Node("ReduceSum", [$"{h}_weights", $"{h}_slot_axis"], $"{h}_total", ("keepdims", 1L)));
        graph.Node.Add(Node("Max", [$"{h}_total", $"{h}_tiny"], $"{h}_divisor"));
        graph.Node.Add(Node("Div", [$"{h}_weights", $"{h}_divisor"], $"{h}_coefficients"));
        graph.Node.Add(Node("Unsqueeze", [$"{h}_coefficients", $"{h}_dim_axis"], $"{h}_coefficient_column"));
        graph.Node.Add(Node("Mul", [$"{h}_embedded", $"{h}_coefficient_column"], $"{h}_weighted"));
        graph.Node.Add(Node("ReduceSum", [$"{h}_weighted", $"{h}_slot_axis"], $"{h}_pooled", ("keepdims", 0L)));
        return $"{h}_pooled";
    }

    static NodeProto Node(string op, string[] inputs, string output, params (string Name, long Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = output + "_" + op.ToLowerInvariant() };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        foreach (var (name, value) in attributes)
            node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });
        return node;
    }

    static ValueInfoProto Value(string name, int elementType, string[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(long.TryParse(d, out var v) ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elementType, Shape = shape } },
        };
    }

    static TensorProto Tensor(string name, long[] dims, float[] values)
    {
        var tensor = new TensorProto { Name = name, DataType = Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return tensor;
    }

    static TensorProto Int64Tensor(string name, long[] dims, long[] values)
    {
        var tensor = new TensorProto { Name = name, DataType = Int64 };
        tensor.Dims.AddRange(dims);
        tensor.Int64Data.AddRange(values);
        return tensor;
    }
}
