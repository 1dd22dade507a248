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
            throw new PipelineError($"{sourceName}:{e.End.Line}:{e.End.Column}: not valid YAML: {e.Message}");
        }
        config.IsEmptyFile = stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" };
        if (!config.IsEmptyFile)
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
            if (keyNode is not YamlScalarNode { Value: { } keyName })
                throw new PipelineError($"{where}: a key must be a plain name (like train.epochs); got {Describe(keyNode)}");
            var name = prefix + keyName;
            if (ConfigSchema.Sections.Contains(name))
            {
                if (valueNode is not YamlMappingNode child)
                    throw new PipelineError($"{where}: '{name}' is a section: expected its keys beneath it " +
                                            $"(e.g. {ConfigSchema.Keys.First(k => k.Section == name || k.Section.StartsWith(name + ".")).Name[(name.Length + 1)..]}: …); got {Describe(valueNode)}");
                ReadMapping(child, name + ".", source);
                continue;
            }
            var key = ConfigSchema.Find(name) ?? throw new PipelineError($"{where}: unknown key '{name}'. {Suggest(name)}");
            Set(key, valueNode, $"{source}:{valueNode.Start.Line}:{valueNode.Start.Column}");
        }
    }

    /// <summary>The key and value of a setting as <c>--set</c> takes it (<c>key=value</c>), trimmed; an empty key where there is no '=' or nothing before it.</summary>
    public static (string Key, string Value) SplitSetting(string assignment) =>
        assignment.IndexOf('=') is var eq and > 0 ? (assignment[..eq].Trim(), assignment[(eq + 1)..].Trim()) : ("", "");

    void ApplyOverride(string assignment)
    {
        var (name, text) = SplitSetting(assignment);
        if (name.Length == 0)
            throw new PipelineError($"--set {assignment}: expected key=value, e.g. --set train.epochs=3");
        var key = ConfigSchema.Find(name) ?? throw new PipelineError($"--set {assignment}: unknown key '{name}'. {Suggest(name)}");
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
        if (Spelling.Closest(name, ConfigSchema.Keys.Select(k => k.Name).Concat(ConfigSchema.Sections)) is { } close)
            return $"Did you mean '{close}'?";
        var section = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
        var siblings = ConfigSchema.Keys.Where(k => k.Section == section).Select(k => k.Name).ToArray();
        return siblings.Length > 0
            ? "Known keys here: " + string.Join(", ", siblings)
            : "Known sections: " + string.Join(", ", ConfigSchema.Sections.Where(s => !s.Contains('.')));
    }


    /// <summary>Rules that involve more than one key.</summary>
    void Validate()
    {
        foreach (var tower in new[] { ConfigSchema.QueryTower, ConfigSchema.CandidateTower })
        {
            var seen = new HashSet<string>();
            foreach (var list in tower.Lists)
            {
                // A repeated feature is reported where it is written the second time.
                if (Get(list).FirstOrDefault(f => !seen.Add(f)) is { } repeated)
                    throw ErrorAt(list.Key, $"feature '{repeated}' is listed twice in the {tower.Tower} tower");
            }
            if (seen.Count == 0)
                throw ErrorAt(tower.Lists.FirstOrDefault(l => origins[l.Name] != "default", tower.Embedded).Key, $"the {tower.Tower} tower has no features");
        }
        var stopping = Get(ConfigSchema.Train.EarlyStoppingMetric);
        if (stopping != "none")
        {
            var k = stopping.StartsWith("hit@", StringComparison.Ordinal) && int.TryParse(stopping[4..], out var parsed) ? parsed : -1;
            if (stopping != "mrr" && !Get(ConfigSchema.Evaluate.Ks).Contains(k))
                throw ErrorAt(ConfigSchema.Train.EarlyStoppingMetric.Key,
                    $"expected none, mrr or hit@k with k one of evaluate.ks ({string.Join(", ", Get(ConfigSchema.Evaluate.Ks))}); got '{stopping}'");
            if (Get(ConfigSchema.Train.ValidateEvery) == 0)
                throw ErrorAt(ConfigSchema.Train.EarlyStoppingMetric.Key, "early stopping needs validation metrics: set train.validate_every to 1 or more");
        }
        if (Get(ConfigSchema.FeaturesHistory.RepeatBias) && Get(ConfigSchema.FeaturesHistory.Length) == 0)
            throw ErrorAt(ConfigSchema.FeaturesHistory.RepeatBias.Key, "the repeat bias scores the articles of the history: set features.query.history.length to 1 or more");
        if (Get(ConfigSchema.Blend.HoldoutFolds) * Get(ConfigSchema.Blend.HoldoutCustomers) > 1 + 1e-9)
            throw ErrorAt(ConfigSchema.Blend.HoldoutFolds.Key,
                $"{Get(ConfigSchema.Blend.HoldoutFolds)} disjoint folds of {Get(ConfigSchema.Blend.HoldoutCustomers):P0} of the customers (blend.holdout_customers) are more than all of them: " +
                "folds × holdout_customers must be at most 1");
        if (Get(ConfigSchema.Model.QueryLayers)[^1] != Get(ConfigSchema.Model.CandidateLayers)[^1])
            // Reported at the one the user set (when only one was: the other is the default they did not touch).
            throw ErrorAt(origins[ConfigSchema.Model.CandidateLayers.Name] == "default" ? ConfigSchema.Model.QueryLayers.Key : ConfigSchema.Model.CandidateLayers.Key,
                "the last layer of both towers must have the same size (the scores are their dot products)");
    }

    /// <summary>An error at the place the user set the key (file:line:column, --set, or "default").</summary>
    public PipelineError ErrorAt(ConfigKey key, string message) => new($"{origins[key.Name]}: '{key.Name}': {message}");

    /// <summary>The config text held no keys at all (an empty or comments-only file): every setting is its default.</summary>
    public bool IsEmptyFile { get; private set; }

    /// <summary>Where the key's value was set: file:line:column, "--set key", or "default".</summary>
    public string Origin(ConfigKey key) => origins[key.Name];

    /// <summary>The key's validated value.</summary>
    public T Get<T>(Setting<T> setting) => (T)values[setting.Name];

    /// <summary>Effective worker count: <c>threads</c>, 0 meaning every core.</summary>
    public int Threads => Get(ConfigSchema.Threads) == 0 ? Environment.ProcessorCount : (int)Get(ConfigSchema.Threads);

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
