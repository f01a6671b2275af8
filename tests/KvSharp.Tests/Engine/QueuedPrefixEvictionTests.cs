using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// A request waiting for admission keeps its cached prefix while the running ones need blocks: the pool gives up the
/// blocks no queued request wants first, even when the queued one's are the least recently used (multi-turn chat
/// returns in a cycle, so its history is the oldest in the cache exactly when it is about to run).
/// </summary>
public class QueuedPrefixEvictionTests
{
    [Fact]
    public void AQueuedTurnKeepsItsHistoryWhileARunningRequestGrows()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        const int blockSize = 4, blocks = 48;
        // One running sequence at a time, so the next turn waits in the queue while the long request runs.
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = blocks, BlockSize = blockSize, MaxRunningSequences = 1 });
        EngineRequest Request(string text, int maxTokens) => new()
        {
            PromptTokens = model.Tokenizer.Encode(text, addSpecial: true, parseSpecial: false),
            Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy },
        };
        static int Blocks(int tokens) => (tokens + blockSize - 1) / blockSize;

        // Two conversations' first turns: the first is now the least recently used.
        var turn1 = Request("Once upon a time, there was a little girl named Lily.", 4);
        var first = engine.Submit(turn1);
        engine.RunUntilIdle();
        var other = Request("The dog ran to the park and saw a big red ball.", 4);
        engine.Submit(other);
        engine.RunUntilIdle();
        int held = turn1.PromptTokens.Count + 4 - 1, otherHeld = other.PromptTokens.Count + 4 - 1;

        // A long request that ends up needing every block but the first conversation's: the other's must go.
        var longPrompt = Request("Tom had a little car.", 1).PromptTokens;
        int length = (blocks - Blocks(held)) * blockSize;
        Assert.True(Blocks(length) > blocks - Blocks(held) - Blocks(otherHeld));
        var running = engine.Submit(new EngineRequest
        {
            PromptTokens = longPrompt,
            Options = new GenerationOptions { MaxTokens = length - longPrompt.Count + 1, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy },
        });
        engine.Step();
        // The first conversation's next turn arrives and waits behind it.
        var turn2 = engine.Submit(new EngineRequest
        {
            PromptTokens = [.. turn1.PromptTokens, .. first.OutputTokens[0], .. model.Tokenizer.Encode(" Then", false, false)],
            Options = turn1.Options,
        });
        engine.RunUntilIdle();

        Assert.Equal(RequestStatus.Finished, running.Status);
        Assert.Equal(0, engine.Metrics.Preemptions);
        Assert.Equal(held, turn2.CachedPromptTokens);
        engine.Pool.Verify();
    }
}
