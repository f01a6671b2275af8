namespace KvSharp.Cli;

/// <summary>
/// The model the CLI runs when no --model is given: stories260K.gguf (MIT, Andrej Karpathy; models/README.md), which
/// the build copies next to KvSharp.Cli.dll and `dotnet pack` puts in the tool package, so a fresh clone or an
/// installed tool can generate text with nothing else.
/// </summary>
internal static class DefaultModel
{
    public const string FileName = "stories260K.gguf";

    public static string PathBesideCli => Path.Combine(AppContext.BaseDirectory, "models", FileName);

    /// <summary>The model to load: <paramref name="given"/>, or the bundled one, named on <paramref name="log"/>.</summary>
    public static string Resolve(string? given, TextWriter log)
    {
        if (given != null) return given;
        string path = PathBesideCli;
        if (!File.Exists(path))
            throw new FileNotFoundException($"no --model given and the bundled default model is missing from {path}; give --model PATH", path);
        log.WriteLine($"[kvsharp] no --model given: using the bundled {FileName} (a 292,800-parameter TinyStories Llama, MIT, by Andrej Karpathy): {path}");
        return path;
    }
}
