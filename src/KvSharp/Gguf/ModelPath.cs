namespace KvSharp.Gguf;

/// <summary>Why a path names no readable file: missing, or a directory (which FileInfo also calls "not existing").</summary>
public static class ModelPath
{
    /// <summary>The exception for a path that is not an existing file; <paramref name="what"/> says what the file was to be.</summary>
    public static IOException NotAFile(string path, string what = "model file") => Directory.Exists(path)
        ? new IOException($"{path} is a directory, not a {what} (give the file inside it)")
        : new FileNotFoundException($"{what} not found: {path}", path);
}
