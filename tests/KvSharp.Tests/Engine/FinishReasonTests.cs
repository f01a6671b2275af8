using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>Why generation ended is told apart: a stop, the length asked for, or the context filling up.</summary>
public class FinishReasonTests
{
    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    [Fact]
    public void FillingTheContextBeforeMaxTokensIsContextFull()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 32 });
        session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 100, StopAtEndOfGeneration = false }).ToList();
        var stats = session.LastStats!;
        Assert.Equal(FinishReason.ContextFull, stats.FinishReason);
        Assert.Equal(32, session.Tokens.Count);
        Assert.Equal(32 - stats.PromptTokens, stats.GeneratedTokens);
    }

    [Fact]
    public void MaxTokensReachedAsTheContextFillsIsLength()
    {
        using var model = Stories();
        using var session = model.CreateSession(new SessionOptions { ContextLength = 32 });
        int prompt = model.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: false).Length;
        session.Generate("Once upon a time", new GenerationOptions { MaxTokens = 32 - prompt, StopAtEndOfGeneration = false }).ToList();
        Assert.Equal(FinishReason.Length, session.LastStats!.FinishReason);
        Assert.Equal(32, session.Tokens.Count);
    }

    [Theory]
    [InlineData(40, new string[0])]
    [InlineData(56, new[] { "Lily" })]
    [InlineData(30, new[] { "xyz", " the" })]
    public void EngineAndSessionStreamTheSameTextAndReason(int maxTokens, string[] stops)
    {
        using var model = Stories();
        var options = new GenerationOptions { MaxTokens = maxTokens, StopStrings = stops };
        var prompt = model.Tokenizer.Encode("Zoo", addSpecial: true, parseSpecial: false);
        using var session = model.CreateSession(new SessionOptions { ContextLength = 256 });
        string alone = string.Concat(session.GenerateTokens(prompt, options));
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 64, BlockSize = 4 });
        var h = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = options });
        engine.RunUntilIdle();
        Assert.Equal(alone, h.OutputText[0]);
        Assert.Equal(session.LastStats!.FinishReason, h.FinishReasons[0]);
    }

    [Fact]
    public void TextHeldBackUntilTheEndAddsNoTokenToTheOutputIds()
    {
        using var model = Stories();
        var prompt = model.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: false);
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 64, BlockSize = 4 });
        var free = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = new GenerationOptions { MaxTokens = 12 } });
        engine.RunUntilIdle();
        string text = free.OutputText[0];
        // A stop string that starts with the reply's last character and never comes: that character is held back (it
        // may begin the stop string) until generation ends for its length, then flushed as text without a token.
        var held = engine.Submit(new EngineRequest
        {
            PromptTokens = prompt,
            Options = new GenerationOptions { MaxTokens = 12, StopStrings = [text[^1..] + "\u0007"] },
        });
        engine.RunUntilIdle();
        var ct = TestContext.Current.CancellationToken;
        var streamed = held.Stream.ReadAllAsync(ct).ToBlockingEnumerable(ct).ToList();
        Assert.Equal(text, held.OutputText[0]);
        Assert.Equal(FinishReason.Length, held.FinishReasons[0]);
        Assert.Equal(free.OutputTokens[0], held.OutputTokens[0]);
        Assert.Equal(-1, streamed[^1].TokenId); // the stream still carries the flushed text, marked as no token
    }
}
