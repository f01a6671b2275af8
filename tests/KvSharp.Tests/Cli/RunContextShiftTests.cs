namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run --context-overflow shift|stop`: shift goes on past the context and says how often it shifted; stop stops and says why.</summary>
public class RunContextShiftTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void ShiftGeneratesPastTheContextAndCountsTheShifts()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "--context", "64", "--max-tokens", "200", "--context-overflow", "shift", "--threads", "2");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("generated 200 tokens", r.Stderr);
        Assert.Contains("finish: Length", r.Stderr);
        // Prompt 4 (BOS + "Zoo"): the first shift at token 61 of 200 discards (64 - 1) / 2 = 31, then one every 31 tokens.
        Assert.Contains("[kvsharp] context shifts: 5 (155 tokens discarded)", r.Stderr);
        Assert.DoesNotContain("is full", r.Stderr);
    }

    [Fact]
    public void StopStillStopsAndNamesBothWaysOn()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "--context", "64", "--max-tokens", "200", "--context-overflow", "stop", "--threads", "2");
        Assert.Equal(0, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n'), l => l.Contains("is full"));
        Assert.Contains("stopped after 60 tokens: the context of 64 tokens is full", line);
        Assert.Contains("--context N raises it, --context-overflow shift goes on past it", line);
        Assert.DoesNotContain("context shifts", r.Stderr);
    }

    [Theory]
    [InlineData("--context-overflow slide", "--context-overflow must be one of stop, shift; got 'slide'")]
    [InlineData("--keep -1", "--keep must be a whole number >= 0, got '-1'")]
    [InlineData("--keep 64 --context 64 --context-overflow shift", "--keep 64 must be below the context length 64: a context shift must leave a position to discard")]
    public void BadValuesAreOneLineErrors(string options, string expected)
    {
        var r = CliRunner.Run(["run", "-m", Stories, "-p", "hi", .. options.Split(' ')]);
        CliOptionErrorTests.AssertOneLineError(r, expected);
    }
}
