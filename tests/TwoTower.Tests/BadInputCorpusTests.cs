using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TwoTower.Tests;

/// <summary>
/// The bad-input corpus (BadInputs/cases.json): each case is files, a command line, the exit code
/// and words the output must hold. Every case runs the real command line in a fresh folder and must
/// also: print no stack trace and no "internal error", leave no .partial folder, and leave every
/// file it started with byte for byte as it was.
/// </summary>
public class BadInputCorpusTests
{
    sealed record Case(string Name, string[] Args, int Exit, string[] Expect, Dictionary<string, string> Files, string? Special, string? Config);

    static readonly Case[] Cases = JsonSerializer.Deserialize<Case[]>(
        File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "TwoTower.Tests", "BadInputs", "cases.json")),
        new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    public static TheoryData<string> Names() => new(Cases.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Names))]
    public async Task BadInputGetsAClearMessageAndChangesNothing(string name)
    {
        var c = Cases.Single(x => x.Name == name);
        var dir = Directory.CreateTempSubdirectory("twotower-bad-").FullName;
        try
        {
            var args = Prepare(c, dir);
            // "occupied-port": a port already listened on, written into the command line as {port}.
            using var occupied = c.Special?.Contains("occupied-port") == true ? new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0) : null;
            occupied?.Start();
            if (occupied != null)
                args = args.Select(a => a.Replace("{port}", ((System.Net.IPEndPoint)occupied.LocalEndpoint).Port.ToString())).ToList();
            var before = Snapshot(dir);
            var (exit, stdout, stderr) = await Run(dir, args);
            var output = stdout + stderr;

            Assert.True(exit == c.Exit, $"exit {exit}, expected {c.Exit}\n{output}");
            foreach (var words in c.Expect)
                Assert.True(output.Contains(words, StringComparison.Ordinal), $"'{words}' not in:\n{output}");
            Assert.DoesNotContain("   at ", output);
            Assert.DoesNotContain("internal error", output);
            Assert.Empty(Directory.EnumerateDirectories(dir, "*.partial", SearchOption.AllDirectories));
            var after = Snapshot(dir);
            foreach (var (path, hash) in before)
                Assert.True(after.TryGetValue(path, out var now) && now == hash, $"{path} was changed or removed");
            foreach (var full in (c.Special ?? "").Split(';').Where(x => x.StartsWith("full-disk:", StringComparison.Ordinal)))
                Assert.False(Path.Exists(Path.Combine(dir, full["full-disk:".Length..])), "the failed write's temporary file was removed");
            if (c.Special?.Contains("bounded-output") == true)
                Assert.True(stderr.Length < 2000, $"{stderr.Length} characters of errors");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Writes the case's files into dir; returns the full command line (config and artifacts made explicit).</summary>
    static List<string> Prepare(Case c, string dir)
    {
        foreach (var (path, text) in c.Files)
        {
            var full = Path.Combine(dir, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text);
        }
        foreach (var special in (c.Special ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var (kind, path) = special.Contains(':') ? (special[..special.IndexOf(':')], Path.Combine(dir, special[(special.IndexOf(':') + 1)..])) : (special, "");
            switch (kind)
            {
                case "mkdir":
                    Directory.CreateDirectory(path);
                    break;
                case "latin1":   // the same text, saved as Latin-1: é becomes the single byte 0xE9
                    File.WriteAllBytes(path, Encoding.Latin1.GetBytes(File.ReadAllText(path)));
                    break;
                case "full-disk":   // a write there fails with ENOSPC, as on a full disk
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    File.CreateSymbolicLink(path, "/dev/full");
                    break;
                case "ten-megabyte-line":
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    File.WriteAllText(path, new string('x', 10 << 20));
                    break;
            }
        }
        var args = new List<string>(c.Args);
        if (c.Config != null)
        {
            File.WriteAllText(Path.Combine(dir, "bad.yaml"), c.Config);
            args.Add("--config=bad.yaml");
        }
        else if (!args.Any(a => a.StartsWith("--config", StringComparison.Ordinal)))
            args.Add($"--config={Path.Combine(TestPaths.RepoRoot, "pipeline.yaml")}");
        if (!args.Any(a => a.StartsWith("--artifacts", StringComparison.Ordinal)))
            args.Add("--artifacts=artifacts");
        return args;
    }

    static Dictionary<string, string> Snapshot(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(dir, f).StartsWith("artifacts", StringComparison.Ordinal) && new FileInfo(f).LinkTarget == null)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    static async Task<(int Exit, string Stdout, string Stderr)> Run(string dir, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "TwoTower.Build.dll"));
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
