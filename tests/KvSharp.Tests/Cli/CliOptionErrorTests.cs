namespace KvSharp.Tests.Cli;

/// <summary>
/// Every mistake on the command line is one line on stderr that names the option, what it accepts and what it got,
/// with exit code 1: no .NET type names, no "(Parameter 'options')", no help dump, no stack trace.
/// </summary>
public class CliOptionErrorTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Theory]
    [InlineData("--max-tokens -1", "--max-tokens must be a whole number >= 0, got '-1'")]
    [InlineData("--threads 0", "--threads must be a whole number from 1 to 1024, got '0'")]
    [InlineData("--threads 10000", "--threads must be a whole number from 1 to 1024, got '10000'")]
    [InlineData("--temperature -1", "--temperature must be a number >= 0, got '-1'")]
    [InlineData("--temperature nan", "--temperature must be a number >= 0, got 'nan'")]
    [InlineData("--temperature inf", "--temperature must be a number >= 0, got 'inf'")]
    [InlineData("--top-p 2", "--top-p must be a number in (0, 1], got '2'")]
    [InlineData("--top-p 0", "--top-p must be a number in (0, 1], got '0'")]
    [InlineData("--top-k -5", "--top-k must be a whole number >= 0, got '-5'")]
    [InlineData("--min-p 2", "--min-p must be a number in [0, 1], got '2'")]
    [InlineData("--repeat-penalty 0", "--repeat-penalty must be a number > 0, got '0'")]
    [InlineData("--presence-penalty nan", "--presence-penalty must be a finite number, got 'nan'")]
    [InlineData("--kv-type q3", "--kv-type must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'q3'")]
    [InlineData("--cache paged", "--cache must be one of none, contiguous, static; got 'paged'")]
    [InlineData("--seed -1", "--seed must be a whole number from 0 to 18446744073709551615, got '-1'")]
    [InlineData("--max-tokens many", "--max-tokens must be a whole number >= 0, got 'many'")]
    [InlineData("--context 0", "--context must be a whole number >= 1, got '0'")]
    [InlineData("--bogus 1", "Unrecognized command or argument '--bogus'")]
    public void RunOptionErrorsAreOneLineNamingTheOptionAndItsAllowedValues(string option, string expected)
    {
        var r = CliRunner.Run(["run", "-m", Stories, "-p", "hi", .. option.Split(' ')]);
        AssertOneLineError(r, expected);
        Assert.EndsWith("(see 'kvsharp run --help')", r.Stderr.TrimEnd());
    }

    [Theory]
    [InlineData("bench --scenario cache --cache none", "--cache must be one of contiguous, static; got 'none'")]
    [InlineData("bench --kv-budget-mib 0", "--kv-budget-mib must be a whole number >= 1, got '0'")]
    [InlineData("bench --warmup -1", "--warmup must be a number >= 0, got '-1'")]
    [InlineData("bench --prompt-tokens 0", "--prompt-tokens must be a whole number >= 1, got '0'")]
    [InlineData("bench --threads 10000", "--threads must be a whole number from 1 to 1024, got '10000'")]
    [InlineData("serve -m x --threads 10000", "--threads must be a whole number from 1 to 1024, got '10000'")]
    [InlineData("logits --model x --tokens 1 --out y --mode parallel", "--mode must be one of batch, sequential; got 'parallel'")]
    [InlineData("logits --tokens 1 --out y", "Option '--model' is required")]
    [InlineData("inspect x.gguf --context 0", "--context must be a whole number >= 1, got '0'")]
    [InlineData("", "Required command was not provided")]
    public void OtherCommandsReportOptionErrorsTheSameWay(string command, string expected)
    {
        var r = CliRunner.Run(command.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        AssertOneLineError(r, expected);
    }

    [Theory]
    [InlineData("Cannot parse argument 'abc' for option '--vocab-size' as expected type 'System.Int32'.", "--vocab-size must be a whole number, got 'abc'")]
    [InlineData("Cannot parse argument 'x' for option '--context' as expected type 'System.Nullable`1[System.Int32]'.", "--context must be a whole number, got 'x'")]
    [InlineData("Cannot parse argument 'x' for option '--scale' as expected type 'System.Single'.", "--scale must be a number, got 'x'")]
    [InlineData("Option '--model' is required.", "Option '--model' is required.")]
    public void OptionsThatDoNotParseTheirOwnValuesStillNameNoDotNetType(string systemCommandLine, string said)
    {
        Assert.Equal(said, KvSharp.Cli.CliApp.WithoutTypeNames(systemCommandLine));
    }

    [Fact]
    public void AnEmptyStopStringNamesTheOption()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "hi", "--stop", "");
        AssertOneLineError(r, "--stop must not be empty");
    }

    [Fact]
    public void TwoMistakesAreStillOneLine()
    {
        var r = CliRunner.Run("run", "-m", Stories, "--top-p", "2", "--cache", "paged");
        AssertOneLineError(r, "--top-p must be a number in (0, 1], got '2'");
        Assert.Contains("--cache must be one of none, contiguous, static; got 'paged'", r.Stderr);
    }

    [Fact]
    public void ValuesAreAcceptedInAnyCaseAndTheLibrarysOtherSpellings()
    {
        var lower = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "8", "--cache", "static", "--kv-type", "f16");
        var upper = CliRunner.Run("run", "-m", Stories, "-p", "Zoo", "-n", "8", "--cache", "Static", "--kv-type", "FLOAT16");
        Assert.Equal(0, lower.ExitCode);
        Assert.Equal(0, upper.ExitCode);
        Assert.Equal(lower.Stdout, upper.Stdout);
        Assert.Contains("[kvsharp] cache static:", lower.Stderr);
        Assert.Contains("KV cache (F16): 640 bytes/token", lower.Stderr);
    }

    [Fact]
    public void HelpSaysKvsharpShowsLowercaseValuesAndOneDefaultPerOption()
    {
        var r = CliRunner.Run("run", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("kvsharp run [options]", r.Stdout);
        Assert.DoesNotContain("KvSharp.Cli", r.Stdout);
        Assert.Contains("--cache <none|contiguous|static>", r.Stdout);
        Assert.Contains("[default: contiguous]", r.Stdout);
        Assert.Contains("--kv-type <f32|f16|q8_0|q4_0|kivi4|kivi2>", r.Stdout);
        Assert.Contains("[default: f32]", r.Stdout);
        string threads = r.Stdout.Split('\n').Single(l => l.Contains("--threads"));
        Assert.Single(threads.Split("default").Skip(1));
        var bench = CliRunner.Run("bench", "--help");
        Assert.Contains("--scenario <speed|cache|capacity|concurrency|multiturn|serve|tiers|router|inspector>", bench.Stdout);
        Assert.Contains("progress line shows an ETA", bench.Stdout);
    }

    [Fact]
    public void AContextThatCannotFitInMemorySaysWhatItNeedsAndWhatFits()
    {
        // 2,000,000,000 positions x 1,280 bytes = 2.33 TiB of F32 keys and values: more than any test machine has.
        var r = CliRunner.Run("run", "-m", Stories, "-p", "hi", "--cache", "static", "--context", "2000000000");
        AssertOneLineError(r, "--context 2000000000 with --cache static needs 2.33 TiB of KV cache (2,000,000,000 tokens x 1,280 bytes/token, f32) but ");
        Assert.Matches(@"of memory is available: at most [\d,]+ tokens fit \(--kv-type q8_0 takes 480 bytes/token\)", r.Stderr);
        // A growing cache only reaches the prompt plus --max-tokens: the same context is fine there.
        var growing = CliRunner.Run("run", "-m", Stories, "-p", "hi", "--context", "2000000000", "-n", "4");
        Assert.Equal(0, growing.ExitCode);
    }

    [Fact]
    public void AKvBudgetThatCannotFitInMemorySaysWhatFits()
    {
        var r = CliRunner.Run("bench", "--model", Stories, "--scenario", "capacity", "--kv-budget-mib", "4000000000");
        AssertOneLineError(r, "--kv-budget-mib 4000000000 needs 3.73 PiB but ");
        Assert.Matches(@"the largest budget that fits is [\d,]+ MiB", r.Stderr);
    }

    [Fact]
    public void ADirectoryAsTheModelIsCalledADirectory()
    {
        var r = CliRunner.Run("run", "--model", TestPaths.Models, "-p", "hi");
        AssertOneLineError(r, $"--model {TestPaths.Models} is a directory; give the model file inside it");
    }

    internal static void AssertOneLineError(CliRunner.Result r, string expected)
    {
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout); // no help dump
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains(expected, r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("System.", r.Stderr);
        Assert.DoesNotContain("(Parameter", r.Stderr);
    }
}
