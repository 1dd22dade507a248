using Cake.Core.Diagnostics;
using TwoTower.Config;
using TwoTower.Evaluation;

namespace TwoTower.Build;

/// <summary>
/// The command line: --name=value, --name value and bare --flag (value "true"); --set may repeat;
/// one bare word may name the target. An unknown option, a second bare word or a bad verbosity is
/// an error that lists what is valid, never silently ignored.
/// </summary>
public static class CommandLine
{
    /// <summary>Every option any target reads, with what it is for (the error for an unknown option lists them).</summary>
    static readonly Dictionary<string, string> Options = new()
    {
        ["target"] = "the target to run",
        ["config"] = "pipeline config file",
        ["set"] = "key=value config override, repeatable",
        ["artifacts"] = "artifacts folder",
        ["force"] = "rerun every stage",
        ["resume"] = "Train continues from its last checkpoint",
        ["verbosity"] = "quiet|minimal|normal|verbose|diagnostic",
        ["customer"] = "Recommend: customer id",
        ["k"] = "Recommend: how many articles",
        ["age"] = "Recommend: the customer's age",
        ["month"] = "Recommend: month of the query",
        ["history"] = "Recommend: recent article ids, most recent first, comma-separated (history features; a new customer's cold start)",
        ["exact"] = "Recommend: exact scoring instead of the index",
        ["exclude-bought"] = "Recommend: drop articles the customer bought",
        ["model-only"] = "Recommend: the two-tower model's list instead of the blend",
        ["baseline"] = "Compare: the artifacts folder of the run to compare with",
        ["repeats"] = "Benchmark: runs per figure",
        ["rate"] = "BenchmarkServing: requests per second",
        ["seconds"] = "BenchmarkServing: measured seconds",
    };

    static readonly Dictionary<string, Verbosity> Verbosities = new()
    {
        ["quiet"] = Verbosity.Quiet, ["q"] = Verbosity.Quiet,
        ["minimal"] = Verbosity.Minimal, ["m"] = Verbosity.Minimal,
        ["normal"] = Verbosity.Normal, ["n"] = Verbosity.Normal,
        ["verbose"] = Verbosity.Verbose, ["v"] = Verbosity.Verbose,
        ["diagnostic"] = Verbosity.Diagnostic, ["diag"] = Verbosity.Diagnostic,
    };

    public static ILookup<string, string> Parse(string[] args)
    {
        var pairs = new List<(string Name, string Value)>();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (pairs.Any(p => p.Name == "target"))
                    throw new PipelineError($"unexpected argument '{arg}': one target per run (targets run what they depend on)");
                pairs.Add(("target", arg));
                continue;
            }
            var eq = arg.IndexOf('=');
            var (name, value) = eq > 0 ? (arg[2..eq], arg[(eq + 1)..])
                : i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) && TakesValue(arg[2..]) ? (arg[2..], args[++i])
                : (arg[2..], "true");
            name = name.ToLowerInvariant();
            if (!Options.ContainsKey(name))
                throw new PipelineError($"unknown option '--{name}'. " +
                                        (Spelling.Closest(name, Options.Keys) is { } close ? $"Did you mean '--{close}'? " : "") +
                                        "Options: " + string.Join(", ", Options.Select(o => $"--{o.Key} ({o.Value})")));
            ValidateValue(name, value);
            if (name == "target" && pairs.Any(p => p.Name == "target"))
                throw new PipelineError($"a second target '{value}': one target per run (targets run what they depend on)");
            pairs.Add((name, value));
        }
        if (pairs.Any(p => p.Name == "target" && p.Value.Equals("Compare", StringComparison.OrdinalIgnoreCase)) && pairs.All(p => p.Name != "baseline"))
            throw new PipelineError("Compare needs --baseline=<the artifacts folder of an Evaluate run on the same validation data>");
        return pairs.ToLookup(p => p.Name, p => p.Value);
    }

    /// <summary>--baseline's per-customer AP@12 file: the folder's evaluate/per_customer_ap12.csv, or the file itself.</summary>
    public static string BaselineCsv(string baseline)
    {
        var csv = Directory.Exists(baseline) ? Path.Combine(baseline, "evaluate", PerCustomerEvaluation.CustomerApFile) : baseline;
        return File.Exists(csv) ? csv
            : throw new PipelineError($"--baseline={baseline}: no {csv}; expected the --artifacts folder of an Evaluate run (or its {PerCustomerEvaluation.CustomerApFile})");
    }

    /// <summary>Numeric option values are checked as the command line is read, before any stage runs.</summary>
    static void ValidateValue(string name, string value)
    {
        switch (name)
        {
            case "repeats" or "k" or "rate":
                PositiveInt(name, value, 0);
                break;
            case "seconds":
                PositiveNumber(name, value, 0);
                break;
            case "baseline":
                BaselineCsv(value);
                break;
        }
    }

    /// <summary>Flags are true when present; every other option takes the next word as its value.</summary>
    static bool TakesValue(string name) => name.ToLowerInvariant() is not ("force" or "resume" or "exact" or "exclude-bought" or "model-only");

    public static Verbosity ParseVerbosity(string? text) =>
        text is null ? Verbosity.Normal
        : Verbosities.TryGetValue(text.ToLowerInvariant(), out var verbosity) ? verbosity
        : throw new PipelineError($"--verbosity={text} is not a verbosity; expected one of: quiet, minimal, normal, verbose, diagnostic");

    /// <summary>A positive integer option, or its default when absent.</summary>
    public static int PositiveInt(string name, string? text, int defaultValue) =>
        text is null ? defaultValue
        : int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0 ? n
        : throw new PipelineError($"--{name} must be a positive integer; got '{text}'");

    /// <summary>A positive number option, or its default when absent.</summary>
    public static double PositiveNumber(string name, string? text, double defaultValue) =>
        text is null ? defaultValue
        : double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x) && x > 0 && double.IsFinite(x) ? x
        : throw new PipelineError($"--{name} must be a positive number; got '{text}'");
}
