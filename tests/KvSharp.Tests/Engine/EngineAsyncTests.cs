using KvSharp.Engine;

namespace KvSharp.Tests.Engine;

/// <summary>The engine on its background loop: submissions from other threads, streamed tokens, cancellation.</summary>
public class EngineAsyncTests
{
    [Fact]
    public async Task BackgroundLoopStreamsTokensFromRequestsSubmittedConcurrently()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 4096, BlockCount = 600, BlockSize = 8 });
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
            // Long enough (seconds at this model's speed) that the cancel below always lands while it runs.
            Options = new GenerationOptions { MaxTokens = 4000, StopAtEndOfGeneration = false },
        });
        await endless.Stream.ReadAsync(stop.Token); // it is running
        endless.Cancel();
        await endless.Completion;
        Assert.Equal(RequestStatus.Cancelled, endless.Status);
        Assert.True(endless.OutputTokens[0].Count < 4000);
        Assert.Equal(0, engine.Pool.UsedBlocks);

        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop);
    }
}
