using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TwoTower.Config;

namespace TwoTower.Pipeline;

/// <summary>
/// artifacts/&lt;stage&gt;/ folders and their manifests. A stage is up to date when its manifest's
/// fingerprint equals the one computed now and every file the manifest lists is there with its
/// size. A run writes into artifacts/&lt;stage&gt;.partial/, writes the manifest last, then swaps the
/// folder in by renames: a run killed at any moment leaves either the old complete folder, no
/// folder, or a partial one that is never mistaken for complete.
/// </summary>
public sealed class ArtifactStore(string root)
{
    public const string ManifestName = "manifest.json";
    const string FingerprintMarker = ".fingerprint";

    public string Root { get; } = Path.GetFullPath(root);

    public string StageDir(string stage) => Path.Combine(Root, stage);
    string PartialDir(string stage) => Path.Combine(Root, stage + ".partial");
    string OldDir(string stage) => Path.Combine(Root, stage + ".old");

    /// <summary>Whether an interrupted run of the stage left a checkpoint that a resumed run continues from.</summary>
    public bool HasCheckpoint(string stage) => File.Exists(Path.Combine(PartialDir(stage), FingerprintMarker));

    public StageManifest? ReadManifest(string stage)
    {
        var path = Path.Combine(StageDir(stage), ManifestName);
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), ManifestJson.Default.StageManifest);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Hash of everything the stage's outputs depend on (its lines are kept for the manifest and <see cref="ChangesSince"/>).</summary>
    public string Fingerprint(Stage stage, PipelineConfig config)
    {
        var text = Inputs(stage, config);
        var fingerprint = Hex(XxHash128.Hash(Encoding.UTF8.GetBytes(text)));
        inputLines[fingerprint] = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return fingerprint;
    }

    /// <summary>Fingerprint → the lines it hashes ("key: value", "upstream stage: fingerprint", "file name: hash"), written into the manifest.</summary>
    readonly Dictionary<string, string[]> inputLines = new();

    string Inputs(Stage stage, PipelineConfig config)
    {
        var text = new StringBuilder();
        text.Append("stage: ").Append(stage.Name).Append('\n');
        text.Append("code: ").Append(stage.CodeVersion).Append('\n');
        text.Append(config.Canonical(stage.ConfigKeys));
        foreach (var upstream in stage.Upstream)
        {
            var manifest = ReadManifest(upstream)
                ?? throw new PipelineError($"stage '{stage.Name}' needs '{upstream}', which has not run (run its target first)");
            text.Append("upstream ").Append(upstream).Append(": ").Append(manifest.Fingerprint).Append('\n');
        }
        foreach (var file in stage.InputFiles(config))
            text.Append("file ").Append(Path.GetFileName(file)).Append(": ").Append(HashFile(file)).Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// Why the stage must run again with this fingerprint, from its manifest's recorded inputs: the
    /// settings that changed (old → new), the upstream stages that ran again, the input files that
    /// changed; or that its outputs were changed or removed. Null when it never ran here.
    /// </summary>
    public string? ChangesSince(string stage, string fingerprint)
    {
        var manifest = ReadManifest(stage);
        if (manifest is null)
            return null;
        if (manifest.Fingerprint == fingerprint)
            return "its outputs were changed or removed since it ran";
        if (manifest.Inputs is null || !inputLines.TryGetValue(fingerprint, out var now))
            return "its settings or inputs changed since it ran";
        static Dictionary<string, string> Parse(IEnumerable<string> lines) => lines
            .Select(l => l.Split(": ", 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.First()[1]);
        var (before, after) = (Parse(manifest.Inputs), Parse(now));
        var changes = before.Keys.Union(after.Keys).Where(k => before.GetValueOrDefault(k) != after.GetValueOrDefault(k)).Select(k => k switch
        {
            _ when k.StartsWith("upstream ", StringComparison.Ordinal) => $"{k["upstream ".Length..]} ran with other settings or inputs",
            _ when k.StartsWith("file ", StringComparison.Ordinal) => $"{k["file ".Length..]} changed",
            "code" => $"its code version {before.GetValueOrDefault(k)} → {after.GetValueOrDefault(k)}",
            _ => $"{k}: {before.GetValueOrDefault(k) ?? "(not set)"} → {after.GetValueOrDefault(k) ?? "(not set)"}",
        }).ToList();
        const int listed = 6;
        return changes.Count == 0 ? "its settings or inputs changed since it ran"
            : string.Join("; ", changes.Take(listed)) + (changes.Count > listed ? $"; and {changes.Count - listed} more" : "");
    }

    public static string HashFile(string path)
    {
        if (!File.Exists(path))
            throw new PipelineError($"input file not found: {path}");
        var hash = new XxHash128();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        hash.Append(stream);
        return Hex(hash.GetCurrentHash());
    }

    static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    public bool IsUpToDate(string stage, string fingerprint)
    {
        var manifest = ReadManifest(stage);
        if (manifest is null || manifest.Fingerprint != fingerprint)
            return false;
        return manifest.Files.All(f =>
        {
            var info = new FileInfo(Path.Combine(StageDir(stage), f.Name));
            return info.Exists && info.Length == f.Bytes;
        });
    }

    /// <summary>Runs the stage into its partial folder and publishes it.</summary>
    public void Run(Stage stage, PipelineConfig config, IPipelineLog log, string fingerprint, bool resume)
    {
        Directory.CreateDirectory(Root);
        var partial = PartialDir(stage.Name);
        var marker = Path.Combine(partial, FingerprintMarker);
        var resuming = resume && stage.CanResume && File.Exists(marker) && File.ReadAllText(marker) == fingerprint;
        if (resume && stage.CanResume && !resuming)
            log.Warning($"--resume: no checkpoint of an interrupted {stage.Name} run with these settings ({partial}); starting from scratch");
        if (!resuming)
        {
            if (Directory.Exists(partial))
                Directory.Delete(partial, recursive: true);
            Directory.CreateDirectory(partial);
            File.WriteAllText(marker, fingerprint);
        }

        try
        {
            stage.Execute(new StageRun(config, log, this, partial, resuming));
        }
        catch when (!stage.CanResume)
        {
            // Nothing of a failed run is kept (a retry after freeing space starts clean); a stage that
            // can resume keeps its partial folder, since its checkpoint is what --resume continues from.
            Directory.Delete(partial, recursive: true);
            throw;
        }
        // A stage's columns are garbage now: give the memory back before the next stage of this process grows its own.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

        File.Delete(marker);
        var files = Directory.EnumerateFiles(partial, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(partial, f).Replace('\\', '/'))
            .Where(f => f != ManifestName)
            .Order(StringComparer.Ordinal)
            .Select(f => new ManifestFile(f, new FileInfo(Path.Combine(partial, f)).Length))
            .ToList();
        var manifest = new StageManifest(stage.Name, fingerprint, stage.CodeVersion, files, inputLines.GetValueOrDefault(fingerprint));
        WriteAtomic(Path.Combine(partial, ManifestName), JsonSerializer.Serialize(manifest, ManifestJson.Default.StageManifest));

        Publish(stage.Name, partial);
    }

    /// <summary>Swaps a complete partial folder (manifest written) in as the stage's folder, by renames.</summary>
    void Publish(string stage, string partial)
    {
        var final = StageDir(stage);
        var old = OldDir(stage);
        if (Directory.Exists(old))
            Directory.Delete(old, recursive: true);
        if (Directory.Exists(final))
            Directory.Move(final, old);
        Directory.Move(partial, final);
        if (Directory.Exists(old))
            Directory.Delete(old, recursive: true);
    }

    /// <summary>
    /// Publishes a copy of another store's stage folder when that one is up to date with this
    /// fingerprint (the same stage, settings and inputs: Sweep's trials share the stages their
    /// settings do not touch); false when it is not.
    /// </summary>
    public bool TryAdopt(string stage, string fingerprint, ArtifactStore from)
    {
        if (!from.IsUpToDate(stage, fingerprint))
            return false;
        Directory.CreateDirectory(Root);
        var partial = PartialDir(stage);
        if (Directory.Exists(partial))
            Directory.Delete(partial, recursive: true);
        foreach (var file in Directory.EnumerateFiles(from.StageDir(stage), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(partial, Path.GetRelativePath(from.StageDir(stage), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        Publish(stage, partial);
        return true;
    }

    /// <summary>Writes a file under a temporary name, then renames it over the target.</summary>
    public static void WriteAtomic(string path, string text) => WriteAtomic(path, stream =>
    {
        using var writer = new StreamWriter(stream, new UTF8Encoding(false));
        writer.Write(text);
    });

    /// <summary>Writes a file through a stream under a temporary name, then renames it over the target.</summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        var tmp = path + ".tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                write(stream);
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            // A failed write (a full disk, a kill is another matter) leaves no temporary file behind to fail the retry.
            if (File.Exists(tmp))
                File.Delete(tmp);
            throw;
        }
    }
}

public sealed record ManifestFile(string Name, long Bytes);

/// <param name="Inputs">The lines the fingerprint hashes (settings, upstream fingerprints, input file hashes): what <see cref="ArtifactStore.ChangesSince"/> compares.</param>
public sealed record StageManifest(string Stage, string Fingerprint, string CodeVersion, List<ManifestFile> Files, string[]? Inputs = null);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(StageManifest))]
partial class ManifestJson : JsonSerializerContext;
