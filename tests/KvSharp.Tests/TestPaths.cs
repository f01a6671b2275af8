namespace KvSharp.Tests;

/// <summary>Locates ../shared (models and llama.cpp fixtures) beside the repository root.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();
    public static string Shared { get; } = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    public static string Fixtures => Path.Combine(Shared, "fixtures");
    public static string Models => Path.Combine(Shared, "models");

    public static string Fixture(string name) => Path.Combine(Fixtures, name);
    public static string Model(string name) => Path.Combine(Models, name);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KvSharp.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("cannot find the repository root (KvSharp.slnx) above " + AppContext.BaseDirectory);
    }
}
