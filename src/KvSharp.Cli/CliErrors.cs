using KvSharp.Gguf;
using KvSharp.Models;

namespace KvSharp.Cli;

/// <summary>Turns the errors a user can cause (bad paths, bad files, bad arguments) into one clear line and exit code 1.</summary>
internal static class CliErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or GgufFormatException
                                      or ModelFormatException or FormatException or InvalidDataException
                                      or ArgumentException or InvalidOperationException or NotSupportedException
                                      or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
