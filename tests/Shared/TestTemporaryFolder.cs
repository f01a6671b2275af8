using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace KvSharp.TestSupport;

/// <summary>
/// Every test process writes its temporary files (models written for a test, sessions, tier folders, and whatever the
/// processes it starts write there) under a folder of its own, removed when it exits: <c>Path.GetTempPath()</c> reads
/// TMPDIR, which this points there as the test assembly loads. Without it each run of the suite left some hundreds of
/// megabytes of GGUF files in /tmp. A run that was killed leaves its folder behind; the next run removes the folders
/// of processes that are gone.
/// </summary>
internal static class TestTemporaryFolder
{
    private const string Prefix = "kvsharp-tests-";

    [ModuleInitializer]
    internal static void Use()
    {
        string root = Path.GetTempPath();
        // Already in one: another test assembly of this process, or a process a test started.
        if (Path.GetFileName(Path.TrimEndingDirectorySeparator(root)).StartsWith(Prefix, StringComparison.Ordinal)) return;
        RemoveFoldersOfEndedProcesses(root);
        string folder = Path.Combine(root, Prefix + Environment.ProcessId);
        Directory.CreateDirectory(folder);
        Environment.SetEnvironmentVariable("TMPDIR", folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(folder);
    }

    private static void RemoveFoldersOfEndedProcesses(string root)
    {
        foreach (string folder in Directory.EnumerateDirectories(root, Prefix + "*"))
            if (int.TryParse(Path.GetFileName(folder)[Prefix.Length..], out int pid) && !Running(pid)) TryDelete(folder);
    }

    private static bool Running(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
            // A file still open elsewhere: the next run removes the folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
