using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TwoTower.Model;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to dtype, shape and byte offsets (plus "__metadata__" strings), then the
/// raw little-endian data. Chosen for the weights because it is trivial to read from any language
/// (Python's safetensors and numpy read it directly) and holds named tensors in one file.
/// </summary>
public static class SafeTensors
{
    public sealed record Tensor(string Name, int[] Shape, float[] Data);

    public static void Write(string path, IReadOnlyList<Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))) };
        long offset = 0;
        foreach (var t in tensors)
        {
            var bytes = (long)t.Data.Length * 4;
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode?)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        Pipeline.ArtifactStore.WriteAtomic(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(json);
            for (var i = json.Length; i < padded; i++)
                stream.WriteByte((byte)' ');
            foreach (var t in tensors)
                stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
        });
    }

    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(bytes.AsSpan(8, headerLength))!.AsObject();
        var tensors = new Dictionary<string, Tensor>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject())
                    metadata[k] = v!.GetValue<string>();
                continue;
            }
            var offsets = node!["data_offsets"]!.AsArray().Select(o => o!.GetValue<long>()).ToArray();
            var shape = node["shape"]!.AsArray().Select(s => s!.GetValue<int>()).ToArray();
            var data = new float[(offsets[1] - offsets[0]) / 4];
            MemoryMarshal.Cast<byte, float>(bytes.AsSpan(8 + headerLength + (int)offsets[0], data.Length * 4)).CopyTo(data);
            tensors[name] = new Tensor(name, shape, data);
        }
        return (tensors, metadata);
    }
}
