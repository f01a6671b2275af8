namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run` says on stderr when it stopped because the context filled, and only then.</summary>
public class RunContextFullTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void RunThatFillsTheModelsContextSaysSoAndHowToRaiseIt()
    {
        // stories260K's metadata says 128 tokens; the prompt (BOS + 3 tokens of "Zoo") leaves room for 124.
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "500", "--threads", "2");
        Assert.Equal(0, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n'), l => l.Contains("is full"));
        Assert.Contains("stopped after 124 tokens", line);
        Assert.Contains("context of 128 tokens", line);
        Assert.Contains("--context N raises it", line);
        Assert.Contains("finish: ContextFull", r.Stderr);
    }

    [Theory]
    [InlineData("stop")]
    [InlineData("shift")]
    public void APromptLongerThanTheContextIsRefusedNamingBoth(string overflow)
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Once upon a time there was a little girl", "--context", "8", "--context-overflow", overflow);
        CliOptionErrorTests.AssertOneLineError(r, "the prompt is 12 tokens, more than the context of 8: shorten it or raise --context (the model's trained context is 128)");
    }

    [Fact]
    public void RunThatReachesMaxTokensSaysNothingAboutTheContext()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "20", "--threads", "2");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("is full", r.Stderr);
        Assert.Contains("finish: Length", r.Stderr);
    }
}
