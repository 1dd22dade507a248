namespace TwoTower.Tests;

static class TestPaths
{
    /// <summary>The repository root: the first folder above the test binaries holding TwoTower.sln.</summary>
    public static string RepoRoot { get; } = FindRoot();

    static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "TwoTower.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("TwoTower.sln not found above " + AppContext.BaseDirectory);
    }
}
