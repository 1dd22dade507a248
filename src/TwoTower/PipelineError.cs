namespace TwoTower;

/// <summary>
/// A problem the user can fix (bad input, bad config, missing file). The command line prints
/// its message and exits non-zero without a stack trace; anything else is a bug.
/// </summary>
public sealed class PipelineError(string message) : Exception(message);
