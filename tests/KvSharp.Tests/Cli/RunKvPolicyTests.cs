namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run --kv-policy` with the score-based policies: they generate, and what they cannot do is a one-line error.</summary>
public class RunKvPolicyTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Theory]
    [InlineData("h2o:16")]
    [InlineData("snapkv:16+obs:4")]
    public void ScoreBasedPoliciesGenerate(string policy)
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Once upon a time, there was a little girl named Lily who loved to play", "--context", "128",
            "--max-tokens", "40", "--kv-policy", policy, "--threads", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Matches(@"generated \d+ tokens", r.Stderr);
        Assert.False(string.IsNullOrWhiteSpace(r.Stdout));
    }

    [Theory]
    [InlineData("--kv-policy h2o:0", "--kv-policy: cache policy 'h2o:0': the budget must keep at least 1 position, got 0")]
    [InlineData("--kv-policy h2o:8+recent:8", "--kv-policy: cache policy 'h2o:8+recent:8': recent must be 0 or more and less than the budget 8")]
    [InlineData("--kv-policy snapkv:8+obs:9", "--kv-policy: cache policy 'snapkv:8+obs:9': the observation window must be at least 1 and at most the budget 8, got 9")]
    [InlineData("--kv-policy h2o:200 --context 128", "--kv-policy: cache policy 'h2o:200' keeps 200 positions, more than the context length of 128 (--context raises it)")]
    [InlineData("--kv-policy h2o:16 --context-overflow shift", "does not apply to cache policy 'h2o:16': it evicts to its budget by itself")]
    public void BadValuesAreOneLineErrors(string options, string expected)
    {
        var r = CliRunner.Run(["run", "-m", Stories, "-p", "hi", .. options.Split(' ')]);
        CliOptionErrorTests.AssertOneLineError(r, expected);
    }
}
