namespace TwoTower;

/// <summary>
/// A problem the user can fix (bad input, bad config, missing file). The command line prints
/// its message and exits non-zero without a stack trace; anything else is a bug.
/// </summary>
public sealed class PipelineError(string message) : Exception(message)
{
    /// <summary>Longest excerpt of the user's input an error quotes: a bad 10 MB line must not flood the console.</summary>
    public const int ExcerptLength = 120;

    /// <summary>The text as the user wrote it, cut to <see cref="ExcerptLength"/> characters with the full length said.</summary>
    public static string Excerpt(ReadOnlySpan<char> text) =>
        text.Length <= ExcerptLength ? text.ToString() : $"{text[..ExcerptLength]}… ({text.Length:N0} characters)";
}
