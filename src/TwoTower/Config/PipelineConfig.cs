using System.Globalization;
using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace TwoTower.Config;

/// <summary>
/// The resolved configuration of a run: pipeline.yaml, then each <c>--set key=value</c>, on top of
/// the schema's defaults. Every value is checked against <see cref="ConfigSchema"/> and remembers
/// where it came from, so an error can name the file, line and column.
/// </summary>
public sealed class PipelineConfig
{
    readonly Dictionary<string, object> values = new();
    readonly Dictionary<string, string> origins = new();

    PipelineConfig()
    {
        foreach (var key in ConfigSchema.Keys)
        {
            values[key.Name] = key.Default;
            origins[key.Name] = "default";
        }
    }

    public static PipelineConfig Defaults() => new();

    public static PipelineConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        if (!File.Exists(path))
            throw new PipelineError($"config file not found: {path}");
        return Parse(File.ReadAllText(path), path, overrides);
    }

    public static PipelineConfig Parse(string yaml, string sourceName, IEnumerable<string>? overrides = null)
    {
        var config = new PipelineConfig();
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new PipelineError($"{sourceName}:{e.Start.Line}:{e.Start.Column}: not valid YAML: {e.Message}");
        }
        if (stream.Documents.Count > 0 && stream.Documents[0].RootNode is not YamlScalarNode { Value: null or "" })
        {
            if (stream.Documents[0].RootNode is not YamlMappingNode root)
                throw new PipelineError($"{sourceName}: the top level must be a mapping of keys");
            config.ReadMapping(root, "", sourceName);
        }
        foreach (var assignment in overrides ?? [])
            config.ApplyOverride(assignment);
        config.Validate();
        return config;
    }

    void ReadMapping(YamlMappingNode mapping, string prefix, string source)
    {
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var where = $"{source}:{keyNode.Start.Line}:{keyNode.Start.Column}";
            var name = prefix + ((YamlScalarNode)keyNode).Value;
            if (valueNode is YamlMappingNode child && ConfigSchema.Sections.Contains(name))
            {
                ReadMapping(child, name + ".", source);
                continue;
            }
            var key = ConfigSchema.Find(name) ?? throw new PipelineError($"{where}: unknown key '{name}'. {Suggest(name)}");
            Set(key, valueNode, $"{source}:{valueNode.Start.Line}:{valueNode.Start.Column}");
        }
    }

    void ApplyOverride(string assignment)
    {
        var eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new PipelineError($"--set {assignment}: expected key=value, e.g. --set train.epochs=3");
        var name = assignment[..eq].Trim();
        var key = ConfigSchema.Find(name) ?? throw new PipelineError($"--set {assignment}: unknown key '{name}'. {Suggest(name)}");
        var text = assignment[(eq + 1)..].Trim();
        YamlNode node;
        if (key.Type is ConfigType.StringList or ConfigType.IntList && !text.StartsWith('['))
            text = "[" + text + "]";
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader("v: " + text));
            node = ((YamlMappingNode)stream.Documents[0].RootNode).Children[new YamlScalarNode("v")];
        }
        catch (YamlException)
        {
            node = new YamlScalarNode(text);
        }
        Set(key, node, $"--set {name}");
    }

    void Set(ConfigKey key, YamlNode node, string where)
    {
        values[key.Name] = Convert(key, node, where);
        origins[key.Name] = where;
    }

    static object Convert(ConfigKey key, YamlNode node, string where)
    {
        PipelineError Wrong(string got) =>
            new($"{where}: '{key.Name}' must be {key.Expected}; got {got}");

        if (key.Type is ConfigType.StringList or ConfigType.IntList)
        {
            if (node is not YamlSequenceNode seq)
                throw Wrong(Describe(node));
            var items = seq.Children.Select(c => c is YamlScalarNode s ? s.Value ?? "" : throw Wrong(Describe(c))).ToArray();
            if (key.Type == ConfigType.StringList)
            {
                if (items.Any(string.IsNullOrWhiteSpace))
                    throw Wrong("an empty name");
                return items;
            }
            var ints = new long[items.Length];
            for (var i = 0; i < items.Length; i++)
            {
                if (!long.TryParse(items[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ints[i]) || !InRange(key, ints[i]))
                    throw Wrong($"'{items[i]}'");
            }
            if (ints.Length == 0)
                throw Wrong("an empty list");
            return ints;
        }

        if (node is not YamlScalarNode scalar)
            throw Wrong(Describe(node));
        var text = scalar.Value ?? "";
        switch (key.Type)
        {
            case ConfigType.Int:
                if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) && InRange(key, l))
                    return l;
                throw Wrong($"'{text}'");
            case ConfigType.Float:
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) && InRange(key, d))
                    return d;
                throw Wrong($"'{text}'");
            case ConfigType.Bool:
                return text switch
                {
                    "true" or "True" or "TRUE" => true,
                    "false" or "False" or "FALSE" => false,
                    _ => throw Wrong($"'{text}'"),
                };
            case ConfigType.Choice:
                if (key.Choices!.Contains(text))
                    return text;
                throw Wrong($"'{text}'");
            default:
                if (text.Length == 0)
                    throw Wrong("an empty value");
                return text;
        }
    }

    static bool InRange(ConfigKey key, double v) =>
        (key.MinExclusive ? v > key.Min : v >= key.Min) && v <= key.Max;

    static string Describe(YamlNode node) => node switch
    {
        YamlScalarNode s => $"'{s.Value}'",
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => node.NodeType.ToString(),
    };

    static string Suggest(string name)
    {
        var best = ConfigSchema.Keys.MinBy(k => Spelling.Distance(k.Name, name))!;
        if (Spelling.Distance(best.Name, name) <= 3)
            return $"Did you mean '{best.Name}'?";
        var section = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
        var siblings = ConfigSchema.Keys.Where(k => k.Section == section).Select(k => k.Name).ToArray();
        return siblings.Length > 0
            ? "Known keys here: " + string.Join(", ", siblings)
            : "Known sections: " + string.Join(", ", ConfigSchema.Sections.Where(s => !s.Contains('.')));
    }


    /// <summary>Rules that involve more than one key.</summary>
    void Validate()
    {
        foreach (var tower in new[] { "query", "candidate" })
        {
            var p = $"features.{tower}.";
            var all = List(p + "embedded").Concat(List(p + "one_hot")).Concat(List(p + "numeric")).Concat(List(p + "raw")).ToArray();
            if (all.Length == 0)
                throw ErrorAt(p + "embedded", $"the {tower} tower has no features");
            var dup = all.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1);
            if (dup != null)
                throw ErrorAt(p + "embedded", $"feature '{dup.Key}' is listed twice in the {tower} tower");
        }
        var stopping = Str("train.early_stopping_metric");
        if (stopping != "none")
        {
            var k = stopping.StartsWith("hit@", StringComparison.Ordinal) && int.TryParse(stopping[4..], out var parsed) ? parsed : -1;
            if (stopping != "mrr" && !IntList("evaluate.ks").Contains(k))
                throw ErrorAt("train.early_stopping_metric",
                    $"expected none, mrr or hit@k with k one of evaluate.ks ({string.Join(", ", IntList("evaluate.ks"))}); got '{stopping}'");
            if (Int("train.validate_every") == 0)
                throw ErrorAt("train.early_stopping_metric", "early stopping needs validation metrics: set train.validate_every to 1 or more");
        }
        if (IntList("model.query_layers")[^1] != IntList("model.candidate_layers")[^1])
            throw ErrorAt("model.candidate_layers",
                "the last layer of both towers must have the same size (the scores are their dot products)");
    }

    public PipelineError ErrorAt(string key, string message) => new($"{origins[key]}: '{key}': {message}");

    public string Origin(string key) => origins[key];

    object Get(string key) =>
        values.TryGetValue(key, out var v) ? v : throw new InvalidOperationException($"no config key '{key}' in the schema");

    public long Int(string key) => (long)Get(key);
    public double Float(string key) => (double)Get(key);
    public bool Bool(string key) => (bool)Get(key);
    public string Str(string key) => (string)Get(key);
    public IReadOnlyList<string> List(string key) => (string[])Get(key);
    public IReadOnlyList<long> IntList(string key) => (long[])Get(key);

    /// <summary>Effective worker count: <c>threads</c>, 0 meaning every core.</summary>
    public int Threads => Int("threads") == 0 ? Environment.ProcessorCount : (int)Int("threads");

    static string Format(object v) => v switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        long l => l.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        string[] list => "[" + string.Join(", ", list.Select(Quote)) + "]",
        long[] list => "[" + string.Join(", ", list) + "]",
        string s => Quote(s),
        _ => v.ToString()!,
    };

    static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || c is '_' or '-' or '.' or '/') ? s : "'" + s.Replace("'", "''") + "'";

    /// <summary>"key: value" lines for the keys under the given prefixes, sorted: what a stage's fingerprint hashes.</summary>
    public string Canonical(IEnumerable<string> prefixes)
    {
        var list = prefixes.ToArray();
        var sb = new StringBuilder();
        foreach (var key in ConfigSchema.Keys.Select(k => k.Name).Order(StringComparer.Ordinal))
        {
            if (list.Any(p => key == p || key.StartsWith(p + ".", StringComparison.Ordinal)))
                sb.Append(key).Append(": ").Append(Format(values[key])).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The whole resolved config as YAML, nested by section (written beside a trained model).</summary>
    public string ToYaml()
    {
        var sb = new StringBuilder();
        string[] open = [];
        foreach (var key in ConfigSchema.Keys)
        {
            var parts = key.Name.Split('.');
            var common = 0;
            while (common < open.Length && common < parts.Length - 1 && open[common] == parts[common])
                common++;
            for (var i = common; i < parts.Length - 1; i++)
                sb.Append(new string(' ', 2 * i)).Append(parts[i]).Append(":\n");
            open = parts[..^1];
            sb.Append(new string(' ', 2 * (parts.Length - 1))).Append(parts[^1]).Append(": ")
              .Append(Format(values[key.Name])).Append('\n');
        }
        return sb.ToString();
    }
}
