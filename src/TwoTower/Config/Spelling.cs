namespace TwoTower.Config;

/// <summary>"Did you mean" for config keys and command-line options: the closest known name by edit distance.</summary>
public static class Spelling
{
    /// <summary>The known name closest to `name`, when it is within 3 edits; else null.</summary>
    public static string? Closest(string name, IEnumerable<string> known) =>
        known.Select(k => (Name: k, Distance: Distance(k, name))).Where(k => k.Distance <= 3).OrderBy(k => k.Distance).Select(k => k.Name).FirstOrDefault();

    /// <summary>Levenshtein distance: insertions, deletions and substitutions.</summary>
    public static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var prev = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cur = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), prev + (a[i - 1] == b[j - 1] ? 0 : 1));
                prev = cur;
            }
        }
        return row[b.Length];
    }
}
