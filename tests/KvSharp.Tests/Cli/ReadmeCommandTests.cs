using System.Text.RegularExpressions;

namespace KvSharp.Tests.Cli;

/// <summary>The README's first command works from a fresh clone: no --model, nothing from ../shared.</summary>
public class ReadmeCommandTests
{
    private const string DotnetRun = "dotnet run -c Release --project src/KvSharp.Cli -- ";

    [Fact]
    public void TheFirstCommandNeedsOnlyTheRepository()
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        string first = Regex.Match(readme, "```\\n(.*?)\\n```", RegexOptions.Singleline).Groups[1].Value;
        Assert.StartsWith(DotnetRun, first);
        Assert.DoesNotContain("shared", first);
        // The arguments after `--`, split the way a shell would for double-quoted words.
        var args = Regex.Matches(first[DotnetRun.Length..], "\"([^\"]*)\"|(\\S+)").Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).ToArray();
        Assert.Equal(["run", "--prompt", "Once upon a time"], args);
        var r = CliRunner.Run(args);
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith(", there was a little girl", r.Stdout);
        Assert.Contains("using the bundled stories260K.gguf", r.Stderr);
    }
}
