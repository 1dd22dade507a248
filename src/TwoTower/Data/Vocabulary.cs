using System.Text.Json;

namespace TwoTower.Data;

/// <summary>
/// Keras <c>StringLookup(vocabulary=train.unique(), mask_token=None)</c>: known values in
/// first-seen order of the training data (the training <see cref="Levels"/>) get 1..n; index 0 is
/// the one out-of-vocabulary slot.
/// </summary>
public sealed class Vocabulary
{
    public const int OutOfVocabulary = 0;

    /// <summary>The file holding a column's vocabulary (artifacts/encode and a package): its values as a JSON array.</summary>
    public static string FileName(string column) => $"vocab.{column}.json";

    /// <summary>The vocabulary of a column from a folder holding vocab.&lt;column&gt;.json (artifacts/encode or a package).</summary>
    public static Vocabulary Read(string dir, string column) =>
        new(JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(dir, FileName(column))))!);

    readonly Dictionary<string, int> index;

    public IReadOnlyList<string> Values { get; }

    /// <summary>Known values; an embedding or one-hot over it has Count + 1 rows.</summary>
    public int Count => Values.Count;

    public Vocabulary(IReadOnlyList<string> values)
    {
        Values = values;
        index = new Dictionary<string, int>(values.Count, StringComparer.Ordinal);
        for (var i = 0; i < values.Count; i++)
        {
            if (!index.TryAdd(values[i], i + 1))
                throw new ArgumentException($"vocabulary value '{values[i]}' appears twice");
        }
    }

    public int this[string value] => index.GetValueOrDefault(value, OutOfVocabulary);

    public int[] Encode(IReadOnlyList<string> values)
    {
        var ids = new int[values.Count];
        for (var i = 0; i < ids.Length; i++)
            ids[i] = this[values[i]];
        return ids;
    }

    /// <summary>The value of id (the empty string for the out-of-vocabulary slot).</summary>
    public string Decode(int id) => id == OutOfVocabulary ? "" : Values[id - 1];
}
