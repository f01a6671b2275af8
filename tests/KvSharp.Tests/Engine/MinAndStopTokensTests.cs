using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// GenerationOptions.MinTokens (vLLM's min_tokens) and StopTokens (stop_token_ids) on stories260K: before MinTokens
/// nothing ends the reply (end-of-generation and stop tokens are ruled out, stop strings do not stop) and the tokens are
/// otherwise the plain greedy ones; a stop token ends the reply without its text; bad values are refused by name, by
/// a session and by the engine.
/// </summary>
public class MinAndStopTokensTests
{
    private const string Prompt = "Once upon a time";

    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    [Fact]
    public void BeforeMinTokensTheEndOfGenerationTokenIsRuledOutAndAfterItItEnds()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        var prompt = model.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: false);
        var plain = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12 });
        // A bias that makes EOS the greedy choice at every step: the reply ends at once without MinTokens.
        var eager = SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [model.Tokenizer.EosId] = 100f } };
        var ended = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12, Sampling = eager });
        Assert.Equal(("", 1, FinishReason.Stop), (ended.Text, ended.Stats.GeneratedTokens, ended.Stats.FinishReason));

        var held = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12, MinTokens = 5, Sampling = eager });
        Assert.Equal(FinishReason.Stop, held.Stats.FinishReason);
        Assert.Equal(6, held.Stats.GeneratedTokens); // five the model chose, then EOS
        Assert.Equal(plain.Tokens[..5], held.Tokens[..5]);
        Assert.Equal(model.Tokenizer.EosId, held.Tokens[5]);
        Assert.Equal(model.Tokenizer.Decode(plain.Tokens[..5]).TrimStart(), held.Text.TrimStart());
    }

    [Fact]
    public void AStopTokenEndsTheReplyWithoutItsTextButNotBeforeMinTokens()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        var prompt = model.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: false);
        var plain = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12 });
        int stop = plain.Tokens[2];
        Assert.DoesNotContain(stop, plain.Tokens[..2]);

        var stopped = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12, StopTokens = [stop] });
        Assert.Equal((FinishReason.Stop, 3), (stopped.Stats.FinishReason, stopped.Stats.GeneratedTokens));
        Assert.Equal(model.Tokenizer.Decode(plain.Tokens[..2]).TrimStart(), stopped.Text.TrimStart());

        // With MinTokens 4 the stop token cannot come third: the runner-up does, and the reply goes on.
        var later = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 12, MinTokens = 4, StopTokens = [stop] });
        Assert.Equal(plain.Tokens[..2], later.Tokens[..2]);
        Assert.NotEqual(stop, later.Tokens[2]);
        Assert.DoesNotContain(stop, later.Tokens[..4]);
        Assert.True(later.Stats.GeneratedTokens >= 4);
    }

    [Fact]
    public void StopStringsDoNotStopBeforeMinTokens()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        var prompt = model.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: false);
        var plain = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 40 });
        Assert.Contains(" girl", plain.Text);
        var cut = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 40, StopStrings = [" girl"] });
        Assert.Equal(plain.Text[..plain.Text.IndexOf(" girl", StringComparison.Ordinal)], cut.Text);

        var held = FreshRun.Of(session, prompt, new GenerationOptions { MaxTokens = 40, MinTokens = 12, StopStrings = [" girl"] });
        Assert.StartsWith(model.Tokenizer.Decode(plain.Tokens[..12]).TrimStart(), held.Text.TrimStart());
        Assert.Contains(" girl", held.Text);
        Assert.True(held.Stats.GeneratedTokens >= 12);
    }

    [Fact]
    public void BadValuesAreRefusedByNameBySessionsAndTheEngine()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 64, BlockCount = 32, BlockSize = 4 });
        var prompt = model.Tokenizer.Encode(Prompt, addSpecial: true, parseSpecial: false);
        foreach (var (options, said) in new (GenerationOptions, string)[]
        {
            (new GenerationOptions { MaxTokens = 4, MinTokens = 5 }, "min tokens must be in [0, max tokens = 4], got 5"),
            (new GenerationOptions { MaxTokens = 4, MinTokens = -1 }, "min tokens must be in [0, max tokens = 4], got -1"),
            (new GenerationOptions { MaxTokens = 4, StopTokens = [512] }, "stop token 512 is outside the vocabulary [0, 512)"),
            (new GenerationOptions { MaxTokens = 4, Sampling = SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [700] = 1f } } }, "logit bias names token 700"),
        })
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => session.GenerateTokens(prompt, options).ToList());
            Assert.Contains(said, e.Message);
            var h = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = options });
            Assert.Equal(RequestStatus.Rejected, h.Status);
            Assert.Contains(said, h.Error);
        }
    }
}
