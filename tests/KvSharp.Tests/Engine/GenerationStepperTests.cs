using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// The generation loop's body on its own, driven token by token: greedy sampling over one-hot logits makes it
/// produce exactly the tokens a test chooses, so every stop rule is checked without depending on what a model says.
/// </summary>
public class GenerationStepperTests
{
    private static readonly Lazy<LlmModel> Model = new(() => LlmModel.Load(TestPaths.Model("stories260K.gguf")));

    private static GenerationStepper Stepper(GenerationOptions options, int contextLength = 1000) =>
        new(Model.Value.Tokenizer, options, new Sampler(SamplingOptions.Greedy, Model.Value.Config.VocabSize), contextLength, skipLeadingSpace: false);

    private static int[] Ids(string text) => Model.Value.Tokenizer.Encode(text, addSpecial: false, parseSpecial: false);

    /// <summary>Makes the stepper sample <paramref name="ids"/> one by one; returns the steps.</summary>
    private static List<GenerationStep> Feed(GenerationStepper stepper, List<int> tokens, IEnumerable<int> ids)
    {
        var steps = new List<GenerationStep>();
        foreach (int id in ids)
        {
            var logits = new float[Model.Value.Config.VocabSize];
            logits[id] = 1;
            var step = stepper.Next(logits, tokens);
            Assert.Equal(id, step.Token);
            steps.Add(step);
            if (step.Finish != null) break;
        }
        return steps;
    }

    [Fact]
    public void AStopStringSplitAcrossTokensIsNeverPartlyShown()
    {
        int[] ids = Ids("Once upon a time Lily ran");
        // Pieces [ Once][ upon][ a][ time][ Lily][ r][an]: the stop string starts inside " Lily" and ends in "an".
        var stepper = Stepper(new GenerationOptions { MaxTokens = 100, StopStrings = ["ly ran"], StopAtEndOfGeneration = false });
        var tokens = new List<int> { 1 };
        var steps = Feed(stepper, tokens, ids);
        Assert.Equal(ids.Length, steps.Count);
        Assert.Equal(FinishReason.Stop, steps[^1].Finish);
        Assert.Equal(" Once upon a time Li", string.Concat(steps.Select(s => s.Text))); // the dummy-prefix space is kept when not skipped
        Assert.DoesNotContain(steps, s => s.Text.Contains("ly"));
        Assert.Equal("", stepper.Flush());
        Assert.Throws<InvalidOperationException>(() => Feed(stepper, tokens, [ids[0]]));
    }

    [Fact]
    public void TextHeldBackForAPossibleStopStringComesOutWhenTheLengthEndsIt()
    {
        int[] ids = Ids("Once upon a time Lily");
        var stepper = Stepper(new GenerationOptions { MaxTokens = ids.Length, StopStrings = ["Lily!"] });
        var steps = Feed(stepper, [1], ids);
        Assert.Equal(FinishReason.Length, stepper.Finish);
        Assert.Equal(ids.Length, stepper.Generated);
        Assert.Equal(" Once upon a time Lily", string.Concat(steps.Select(s => s.Text)) + stepper.Flush());
        Assert.DoesNotContain("Lily", string.Concat(steps.Select(s => s.Text)));
    }

    [Fact]
    public void AnEndOfGenerationTokenStopsWithoutText()
    {
        var tok = Model.Value.Tokenizer;
        var stepper = Stepper(new GenerationOptions { MaxTokens = 100 });
        var steps = Feed(stepper, [1], [.. Ids("Once"), tok.EosId]);
        Assert.Equal(FinishReason.Stop, steps[^1].Finish);
        Assert.Equal("", steps[^1].Text);
        var ignoring = Stepper(new GenerationOptions { MaxTokens = 100, StopAtEndOfGeneration = false });
        Assert.Null(Feed(ignoring, [1], [.. Ids("Once"), tok.EosId])[^1].Finish);
    }

    [Fact]
    public void TheLengthAskedForWinsOverTheContextFillingAtTheSameToken()
    {
        int[] ids = Ids("Once upon a time");
        var tokens = new List<int> { 1 };
        Feed(Stepper(new GenerationOptions { MaxTokens = 100, StopAtEndOfGeneration = false }, contextLength: 3), tokens, ids);
        Assert.Equal(3, tokens.Count);
        var full = Stepper(new GenerationOptions { MaxTokens = 100, StopAtEndOfGeneration = false }, contextLength: 3);
        Assert.Equal(FinishReason.ContextFull, Feed(full, [1], ids)[^1].Finish);
        var both = Stepper(new GenerationOptions { MaxTokens = 2, StopAtEndOfGeneration = false }, contextLength: 3);
        Assert.Equal(FinishReason.Length, Feed(both, [1], ids)[^1].Finish);
        Assert.Equal(FinishReason.Length, Stepper(new GenerationOptions { MaxTokens = 0 }).Finish);
    }
}
