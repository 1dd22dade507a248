using System.Globalization;

namespace TwoTower.Data;

/// <summary>
/// The built-in data generator's mark on a data folder: synth_manifest.txt. The generator writes
/// only into a folder that has no configured data file yet, or one that carries this mark, so it
/// never replaces files it did not write. The mark is written before any data file ("generating",
/// listing the files it is about to write) and rewritten after the last one ("complete", with the
/// fingerprint of the settings and each file's size), so a kill at any moment leaves a folder
/// that the next run regenerates as a whole, never a mix of two generations.
/// </summary>
public sealed record GeneratedDataManifest(bool Complete, string Fingerprint, IReadOnlyDictionary<string, long> FileBytes)
{
    public const string FileName = "synth_manifest.txt";
    const string Header = "twotower built-in data";

    public static string PathIn(string dir) => Path.Combine(dir, FileName);

    /// <summary>
    /// The folder's mark, or null when it has none. A mark in an earlier version's format (the
    /// fingerprint alone) is read as an incomplete generation of the configured files: the
    /// generator wrote them, and regenerates them.
    /// </summary>
    public static GeneratedDataManifest? Read(string dir, IEnumerable<string> configuredFiles)
    {
        var path = PathIn(dir);
        if (!File.Exists(path))
            return null;
        var lines = File.ReadAllLines(path);
        if (lines.Length < 3 || lines[0] != Header || !lines[1].StartsWith("state: ") || !lines[2].StartsWith("fingerprint: "))
            return new GeneratedDataManifest(false, "", configuredFiles.ToDictionary(f => Path.GetFileName(f), _ => -1L));
        var files = new Dictionary<string, long>();
        foreach (var line in lines.Skip(3))
        {
            var parts = line.Split(' ');
            if (parts is ["file:", var name, var bytes] && long.TryParse(bytes, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
                files[name] = n;
        }
        return new GeneratedDataManifest(lines[1] == "state: complete", lines[2]["fingerprint: ".Length..], files);
    }

    /// <summary>Marks the folder as being generated with these settings, before any data file is written.</summary>
    public static void WriteGenerating(string dir, string fingerprint, IEnumerable<string> files) =>
        Write(dir, "generating", fingerprint, files.Select(f => $"file: {Path.GetFileName(f)} -1"));

    /// <summary>Marks the generation complete, after every data file is in place.</summary>
    public static void WriteComplete(string dir, string fingerprint, IEnumerable<string> files) =>
        Write(dir, "complete", fingerprint,
            files.Select(f => $"file: {Path.GetFileName(f)} {new FileInfo(f).Length.ToString(CultureInfo.InvariantCulture)}"));

    static void Write(string dir, string state, string fingerprint, IEnumerable<string> fileLines) =>
        Pipeline.ArtifactStore.WriteAtomic(PathIn(dir),
            string.Join('\n', [Header, "state: " + state, "fingerprint: " + fingerprint, .. fileLines]) + "\n");

    /// <summary>Complete, made with these settings, and every file there with the size it was written with.</summary>
    public bool IsCurrent(string fingerprint, IEnumerable<string> files) =>
        Complete && Fingerprint == fingerprint && files.All(f =>
            FileBytes.TryGetValue(Path.GetFileName(f), out var bytes) && new FileInfo(f).Exists && new FileInfo(f).Length == bytes);

    /// <summary>
    /// The configured files present in the folder that this generation did not leave as they are:
    /// a complete generation records each file's size, and a file of another size (or one it never
    /// wrote) has been replaced by someone else since, so it is not the generator's to overwrite.
    /// </summary>
    public IEnumerable<string> ForeignFiles(IEnumerable<string> files) =>
        files.Where(f => File.Exists(f) && (!FileBytes.TryGetValue(Path.GetFileName(f), out var bytes)
                                            || (Complete && new FileInfo(f).Length != bytes)));
}
