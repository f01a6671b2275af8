using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Cli;

/// <summary>
/// `kvsharp run --logit-bias`: llama.cpp's TOKEN_ID(+/-)BIAS, repeatable, gives what the library gives with the same
/// LogitBias; malformed values and ids past the vocabulary are one line naming what was wrong.
/// </summary>
public class RunLogitBiasTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");

    [Theory]
    [InlineData("15043+1", 15043, 1f)]
    [InlineData("7-0.5", 7, -0.5f)]
    [InlineData("7=-2.25", 7, -2.25f)]
    [InlineData("0=3", 0, 3f)]
    [InlineData("42-inf", 42, float.NegativeInfinity)]
    [InlineData("42=-INF", 42, float.NegativeInfinity)]
    public void LlamaCppsSpellingParses(string text, int id, float bias)
    {
        Assert.True(KvSharp.Cli.LogitBiasOption.TryParse(text, out int parsedId, out float parsedBias));
        Assert.Equal((id, bias), (parsedId, parsedBias));
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("+1")]
    [InlineData("12")]
    [InlineData("12*3")]
    [InlineData("12+inf")]
    [InlineData("12+nan")]
    [InlineData("12+")]
    [InlineData("-3+1")]
    public void AnythingElseDoesNot(string text) => Assert.False(KvSharp.Cli.LogitBiasOption.TryParse(text, out _, out _));

    [Fact]
    public void RunWithBiasesPrintsWhatTheLibraryGenerates()
    {
        using var model = LlmModel.Load(Stories, new ModelLoadOptions { Threads = 2 });
        using var session = model.CreateSession(new SessionOptions { ContextLength = 512 });
        var prompt = model.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: false);
        session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 12 }).ToList();
        int first = session.Tokens[prompt.Length];
        var bias = new Dictionary<int, float> { [first] = float.NegativeInfinity, [first + 1] = 2.5f };
        session.Reset();
        string expected = string.Concat(session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 12, Sampling = SamplingOptions.Greedy with { LogitBias = bias } }));

        var r = CliRunner.Run("run", "-m", Stories, "-p", "Once upon a time", "-n", "12", "--logit-bias", $"{first}-inf", "--logit-bias", $"{first + 1}+2.5");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(expected, r.Stdout.TrimEnd('\n'));
        var plain = CliRunner.Run("run", "-m", Stories, "-p", "Once upon a time", "-n", "12");
        Assert.NotEqual(plain.Stdout, r.Stdout);
    }

    [Theory]
    [InlineData("abc", "--logit-bias must be TOKEN_ID+BIAS, TOKEN_ID-BIAS or TOKEN_ID=BIAS with a finite BIAS or -inf (e.g. 15043+1, 15043-inf), got 'abc'")]
    [InlineData("600+1", "logit bias names token 600, but the model's vocabulary has 512 tokens (ids 0 to 511)")]
    public void BadBiasesAreOneLine(string value, string expected)
    {
        var r = CliRunner.Run("run", "-m", Stories, "-p", "hi", "-n", "4", "--logit-bias", value);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
