using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>The engine on its background loop: submissions from other threads, streamed tokens, cancellation.</summary>
public class EngineAsyncTests
{
    [Fact]
    public async Task BackgroundLoopStreamsTokensFromRequestsSubmittedConcurrently()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 32768, BlockCount = 4200, BlockSize = 8 });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        stop.CancelAfter(TimeSpan.FromMinutes(2));
        var loop = Task.Run(() => engine.RunAsync(stop.Token), stop.Token);

        var prompts = new[] { "Once upon a time", "The dog ran", "Lily saw a bird", "Tom was sad" };
        var consumers = prompts.Select(p => Task.Run(async () =>
        {
            var h = engine.Submit(new EngineRequest
            {
                PromptTokens = model.Tokenizer.Encode(p, true, false),
                Options = new GenerationOptions { MaxTokens = 20, StopAtEndOfGeneration = false },
            });
            var streamed = new List<GeneratedToken>();
            await foreach (var t in h.Stream.ReadAllAsync(stop.Token)) streamed.Add(t);
            await h.Completion;
            return (h, streamed);
        }, stop.Token)).ToArray();
        var results = await Task.WhenAll(consumers);

        foreach (var (h, streamed) in results)
        {
            Assert.Equal(RequestStatus.Finished, h.Status);
            Assert.Equal(h.OutputTokens[0], streamed.Where(t => t.TokenId >= 0).Select(t => t.TokenId));
            Assert.Equal(h.OutputText[0], string.Concat(streamed.Select(t => t.Text)));
            Assert.NotNull(h.TimeToFirstToken);
        }

        var endless = engine.Submit(new EngineRequest
        {
            PromptTokens = model.Tokenizer.Encode("Once", true, false),
            // Far longer than the cancel below can take to land, even when the test host starves this test's
            // continuations for seconds: 4,000 tokens once finished in under two seconds on a loaded machine and the
            // cancel arrived too late. 32,000 tokens, with attention growing along, take minutes.
            Options = new GenerationOptions { MaxTokens = 32000, StopAtEndOfGeneration = false },
        });
        await endless.Stream.ReadAsync(stop.Token); // it is running
        endless.Cancel();
        await endless.Completion;
        Assert.Equal(RequestStatus.Cancelled, endless.Status);
        Assert.True(endless.OutputTokens[0].Count < 32000);
        Assert.Equal(0, engine.Pool.UsedBlocks);

        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop);
    }
}
