using TwoTower.Pipeline;

namespace TwoTower.Tests;

/// <summary>A pipeline log that keeps what it is told, for tests that check the messages.</summary>
sealed class RecordingLog : IPipelineLog
{
    public readonly List<string> Lines = [];
    public void Info(string message) => Lines.Add(message);
    public void Warning(string message) => Lines.Add("warning: " + message);
    public void Verbose(string message) { }
}
