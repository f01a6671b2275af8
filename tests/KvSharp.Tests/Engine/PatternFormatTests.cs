using System.Text.RegularExpressions;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// ResponseFormat.Pattern on stories260K (vLLM's guided_regex and guided_choice): the reply is a whole match of the
/// pattern, or exactly one of the choices, sampled or greedy; a match nothing may extend ends the reply; a prefix the
/// budget cut is still a prefix of a match.
/// </summary>
public class PatternFormatTests
{
    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static (string Text, GenerationStats Stats) Run(InferenceSession session, string prompt, PatternPrefix pattern, int maxTokens, float temperature, ulong seed)
    {
        session.Reset();
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens, Format = ResponseFormat.Pattern, Pattern = pattern,
            Sampling = new SamplingOptions { Temperature = temperature, Seed = seed },
        };
        string text = string.Concat(session.Generate(prompt, options));
        return (text, session.LastStats!);
    }

    [Theory]
    [InlineData(0f, 1ul)]
    [InlineData(1f, 2ul)]
    [InlineData(1.5f, 3ul)]
    public void AChoiceIsExactlyOneOfThem(float temperature, ulong seed)
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        string[] choices = ["happy", "sad", "a big red ball"];
        var (text, stats) = Run(session, "Lily was", PatternPrefix.OneOf(choices, "choices"), 40, temperature, seed);
        Assert.Contains(text, choices);
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
    }

    [Theory]
    [InlineData(0f, 1ul)]
    [InlineData(1f, 7ul)]
    public void ARegexIsMatchedWholeOrStillAPrefixOfAMatch(float temperature, ulong seed)
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        const string Regex = "[A-Z][a-z]+ (is|was) [0-9]{1,2} years old\\.";
        var (text, stats) = Run(session, "Once upon a time", PatternPrefix.WholeText(Regex, "regex"), 60, temperature, seed);
        var whole = new Regex("^(?:" + Regex + ")$");
        if (stats.FinishReason == FinishReason.Stop) Assert.Matches(whole, text);
        else Assert.True(PatternPrefix.WholeText(Regex, "regex").Viable(text), text);
        // Unconstrained, the same prompt writes no such sentence.
        session.Reset();
        Assert.DoesNotMatch(whole, string.Concat(session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 60 })));
    }

    [Fact]
    public void PatternFormatWithoutAPatternIsRefused()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        var e = Assert.Throws<ArgumentException>(() => session.Generate("Hi", new GenerationOptions { Format = ResponseFormat.Pattern }).ToList());
        Assert.Contains("ResponseFormat.Pattern needs GenerationOptions.Pattern", e.Message);
    }
}
