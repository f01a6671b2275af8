using System.Text.RegularExpressions;

namespace KvSharp.Tests.Cli;

/// <summary>`kvsharp run --regex`: the output is a text the expression matches whole; a bad expression or one beside --json-schema is one line naming it.</summary>
public class RunRegexTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Fact]
    public void TheOutputMatchesTheExpression()
    {
        const string Pattern = "(happy|sad|very tired)\\.";
        var r = CliRunner.Run("run", "-m", Stories, "-p", "Lily was", "-n", "20", "--regex", Pattern);
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(new Regex("^(?:" + Pattern + ")$"), r.Stdout.TrimEnd('\n'));
        var free = CliRunner.Run("run", "-m", Stories, "-p", "Lily was", "-n", "20");
        Assert.DoesNotMatch(new Regex("^(?:" + Pattern + ")$"), free.Stdout.TrimEnd('\n'));
    }

    [Theory]
    [InlineData(new[] { "--regex", "(?=a)b" }, "--regex: lookahead")]
    [InlineData(new[] { "--regex", "a", "--json-schema", "object" }, "--regex and --json-schema each hold the whole output: give one of them")]
    public void MistakesAreOneLine(string[] options, string expected)
    {
        var r = CliRunner.Run(["run", "-m", Stories, "-p", "hi", "-n", "4", .. options]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
