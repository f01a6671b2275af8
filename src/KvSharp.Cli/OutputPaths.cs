namespace KvSharp.Cli;

/// <summary>
/// Checks a path a command will write before the work that fills it: a directory where a file goes, a missing parent
/// directory, or a file where a directory goes is one line naming the option, not .NET's "Access to the path is
/// denied" or "The file already exists" after minutes of computing.
/// </summary>
internal static class OutputPaths
{
    public static void CheckFile(string option, string path)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"{option} {path} is a directory; give a file name inside it");
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent != null && !Directory.Exists(parent))
            throw new DirectoryNotFoundException($"{option} {path}: the directory {parent} does not exist");
    }

    /// <summary>A directory that is created when missing (--session-dir, --kv-tier-disk) must not be an existing file.</summary>
    public static void CheckDirectory(string option, string path)
    {
        if (File.Exists(path))
            throw new ArgumentException($"{option} {path} is a file; give a directory (it is created if missing)");
    }
}
