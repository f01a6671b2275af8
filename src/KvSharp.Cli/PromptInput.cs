using System.CommandLine;

namespace KvSharp.Cli;

/// <summary>Where a prompt comes from: --prompt TEXT, --file PATH, --file - (standard input), or piped input.</summary>
internal static class PromptInput
{
    public static Option<string?> File() => new("--file", "-f")
    {
        Description = "read the prompt from a file ('-' = standard input; piped input is read when neither --prompt nor --file is given). Trailing line breaks are dropped",
    };

    /// <summary>
    /// The prompt text. Line breaks at the end of a file or of piped input are dropped, as a shell's $(cat file) does:
    /// an editor's final newline is rarely meant as part of the prompt. With nothing given and a terminal as input the
    /// prompt is empty (generation starts from BOS).
    /// </summary>
    public static string Read(string? prompt, string? file, TextReader stdin, bool stdinRedirected)
    {
        if (prompt != null && file != null) throw new ArgumentException("give the prompt with --prompt or with --file, not both");
        if (prompt != null) return prompt;
        if (file == null) return stdinRedirected ? TrimLineBreaks(stdin.ReadToEnd()) : "";
        if (file == "-") return TrimLineBreaks(stdin.ReadToEnd());
        CommonOptions.CheckNotDirectory("--file", file, "a text file (or - for standard input)");
        if (!System.IO.File.Exists(file)) throw new FileNotFoundException($"--file: prompt file not found: {file}", file);
        return TrimLineBreaks(System.IO.File.ReadAllText(file));
    }

    private static string TrimLineBreaks(string text) => text.TrimEnd('\n', '\r');
}
