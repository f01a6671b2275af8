using KvSharp.Gguf;
using KvSharp.Models;

namespace KvSharp.Cli;

/// <summary>
/// Turns every error into one line on stderr and a non-zero exit code: 1 for what a user can cause (bad paths, bad
/// files, bad arguments, not enough memory), 2 for anything else (a bug: its type and message, and the stack trace
/// only with KVSHARP_TRACE=1).
/// </summary>
internal static class CliErrors
{
    public const int UserError = 1, InternalError = 2;

    public static int Run(Func<int> action) => Run(action, Console.Error);

    public static int Run(Func<int> action, TextWriter stderr)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            stderr.WriteLine($"error: {Message(e)}");
            return UserError;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("KVSHARP_TRACE") != "1")
        {
            stderr.WriteLine($"error: internal error ({e.GetType().Name}): {Message(e)} (KVSHARP_TRACE=1 prints the stack trace)");
            return InternalError;
        }
    }

    private static bool IsUserError(Exception e) =>
        e is FileNotFoundException or DirectoryNotFoundException or GgufFormatException or ModelFormatException or FormatException
            or InvalidDataException or ArgumentException or InvalidOperationException or NotSupportedException or IOException
            or UnauthorizedAccessException or OutOfMemoryException;

    /// <summary>
    /// The message on one line, without .NET's " (Parameter 'options')" suffix; an out-of-range value is said as
    /// "(got -1)" instead of .NET's second line "Actual value was -1.".
    /// </summary>
    public static string Message(Exception e)
    {
        string text = e.Message;
        if (e is ArgumentException { ParamName: { } name })
        {
            text = text.Split('\n')[0].Replace($" (Parameter '{name}')", "");
            if (e is ArgumentOutOfRangeException { ActualValue: { } actual }) text += $" (got {actual})";
        }
        if (e is OutOfMemoryException) text = "out of memory: " + text;
        return string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
