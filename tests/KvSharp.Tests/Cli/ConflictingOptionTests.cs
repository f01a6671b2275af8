namespace KvSharp.Tests.Cli;

/// <summary>
/// An option that would be ignored is refused instead, naming it and why: whoever typed it expects it to matter, and
/// a run that silently drops it gives output they did not ask for.
/// </summary>
public class ConflictingOptionTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");
    private static readonly string Tok512 = TestPaths.Model("tok512.bin");

    [Theory]
    [InlineData("run", "-p", "hi")]
    [InlineData("logits", "--tokens", "1,2", "--out", "unused.f32")]
    public void ATokenizerBesideAGgufModelIsRefused(params string[] command)
    {
        var r = CliRunner.Run([.. command, "-m", Stories, "--tokenizer", Tok512]);
        CliOptionErrorTests.AssertOneLineError(r, $"--tokenizer is only for a llama2.c checkpoint; --model {Stories} is a GGUF file, which has its own tokenizer");
    }

    [Fact]
    public void TokenizeTakesAModelOrATokenizerNotBoth()
    {
        var both = CliRunner.Run("tokenize", "-m", Stories, "--tokenizer", Tok512, "--text", "Zoo");
        CliOptionErrorTests.AssertOneLineError(both, "give --model (a GGUF file) or --tokenizer (a llama2.c tokenizer.bin), not both");
        var vocab = CliRunner.Run("tokenize", "-m", Stories, "--vocab-size", "3", "--text", "Zoo");
        CliOptionErrorTests.AssertOneLineError(vocab, "--vocab-size 3 only checks a llama2.c --tokenizer");
    }

    [Fact]
    public void KeepWithoutAContextShiftIsRefused()
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "hi", "-n", "2", "--keep", "3");
        CliOptionErrorTests.AssertOneLineError(r, "--keep 3 only applies to a context shift: add --context-overflow shift");
        Assert.Equal(0, CliRunner.Run("run", "-m", Stories, "-p", "hi", "-n", "2", "--keep", "3", "--context-overflow", "shift").ExitCode);
    }
}
