namespace KvSharp.Tests.Cli;

/// <summary>The bundled default model, and the prompt from --file, standard input or a pipe.</summary>
public class DefaultModelAndPromptTests
{
    private static readonly string Golden = File.ReadAllText(TestPaths.Model("golden-zoo-60.txt")).TrimEnd('\n');

    [Fact]
    public void TheBundledModelIsTheSharedStoriesFileWithItsLicence()
    {
        string bundled = Path.Combine(TestPaths.RepoRoot, "models", "stories260K.gguf");
        Assert.Equal(File.ReadAllBytes(TestPaths.Model("stories260K.gguf")), File.ReadAllBytes(bundled));
        Assert.Contains("Copyright (c) 2023 Andrej Karpathy", File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "models", "LICENSE")));
        // The build copies it next to the CLI (here: next to the tests, which reference the CLI project).
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "models", "stories260K.gguf")));
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "models", "LICENSE")));
    }

    [Fact]
    public void RunWithoutAModelUsesTheBundledOneAndSaysSo()
    {
        var r = CliRunner.Run("run", "--prompt", "Zoo", "--max-tokens", "57", "--context", "512");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(Golden, "Zoo" + r.Stdout.TrimEnd('\n'));
        string bundled = Path.Combine(AppContext.BaseDirectory, "models", "stories260K.gguf");
        Assert.Contains($"[kvsharp] no --model given: using the bundled stories260K.gguf", r.Stderr);
        Assert.Contains(bundled, r.Stderr);
    }

    [Fact]
    public void AGivenModelIsNotAnnouncedAsTheDefault()
    {
        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "3");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("no --model given", r.Stderr);
    }

    [Theory]
    [InlineData("file")]
    [InlineData("dash")]
    [InlineData("pipe")]
    public void ThePromptComesFromAFileStandardInputOrAPipe(string source)
    {
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "Zoo\n"); // an editor's final newline is not part of the prompt
        try
        {
            string[] common = ["run", "-m", TestPaths.Model("stories260K.gguf"), "-n", "57", "-c", "512"];
            var r = source switch
            {
                "file" => CliRunner.Run([.. common, "-f", file]),
                "dash" => CliRunner.RunWithInput("Zoo\r\n", [.. common, "--file", "-"]),
                _ => CliRunner.RunWithInput("Zoo\n", common),
            };
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(Golden, "Zoo" + r.Stdout.TrimEnd('\n'));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void APromptGivenTwiceOrAMissingFileIsOneLine()
    {
        var both = CliRunner.Run("run", "-p", "Zoo", "-f", "/nonexistent/prompt.txt");
        CliOptionErrorTests.AssertOneLineError(both, "give the prompt with --prompt or with --file, not both");
        var missing = CliRunner.Run("run", "-f", "/nonexistent/prompt.txt");
        CliOptionErrorTests.AssertOneLineError(missing, "--file: prompt file not found: /nonexistent/prompt.txt");
    }
}
