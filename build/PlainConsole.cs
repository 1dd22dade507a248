using Cake.Core;

namespace TwoTower.Build;

/// <summary>
/// Cake's console without colours, for output that is not a terminal (a file, a pipe, CI) or when
/// NO_COLOR is set (https://no-color.org): Cake's log would otherwise write ANSI escape codes.
/// </summary>
public sealed class PlainConsole : IConsole
{
    public static bool Wanted =>
        Console.IsOutputRedirected || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));

    public ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;
    public ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;
    public bool SupportAnsiEscapeCodes => false;

    public void Write(string format, params object[] arg) => Console.Write(format, arg);
    public void Write(string value) => Console.Write(value);
    public void WriteLine(string format, params object[] arg) => Console.WriteLine(format, arg);
    public void WriteLine(string value) => Console.WriteLine(value);
    public void WriteError(string format, params object[] arg) => Console.Error.Write(format, arg);
    public void WriteError(string value) => Console.Error.Write(value);
    public void WriteErrorLine(string format, params object[] arg) => Console.Error.WriteLine(format, arg);
    public void WriteErrorLine(string value) => Console.Error.WriteLine(value);
    public void ResetColor() { }
}
