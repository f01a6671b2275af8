using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// EngineRequest.PromptLogprobs on stories260K: each prompt token after the first gets the log-softmax of the logits
/// at the position before it (those a whole-prompt evaluation gives), wherever the prompt's chunks fall in the steps,
/// beside other requests, after a cached prefix, through preemption; the generated tokens do not change; max tokens 0
/// only scores.
/// </summary>
public class PromptLogprobsTests
{
    private const int Top = 3;

    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static int[] Tokens(LlmModel model, string text) => model.Tokenizer.Encode(text, addSpecial: true, parseSpecial: false);

    private static EngineRequest Request(int[] prompt, int maxTokens, int? promptLogprobs) => new()
    {
        PromptTokens = prompt,
        Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy },
        PromptLogprobs = promptLogprobs,
    };

    /// <summary>What each prompt token's entry must be: from a whole-prompt evaluation's logits, one position before it.</summary>
    private static TokenLogprobs[] Expected(LlmModel model, int[] prompt, int top)
    {
        int vocab = model.Config.VocabSize;
        var logits = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true);
        return [.. Enumerable.Range(1, prompt.Length - 1).Select(p => TokenLogprobs.From(logits.AsSpan((p - 1) * vocab, vocab), prompt[p], top))];
    }

    private static void AssertScored(TokenLogprobs[] expected, RequestHandle handle, int[] prompt)
    {
        var got = handle.PromptLogprobs!;
        Assert.Equal(prompt.Length, got.Count);
        Assert.Null(got[0]);
        for (int p = 1; p < prompt.Length; p++)
        {
            var e = expected[p - 1];
            var g = got[p]!;
            Assert.Equal(prompt[p], g.Sampled.Token);
            // Bit-identical on the hosts seen so far; the bound leaves room for a kernel path that sums attention apart.
            Assert.Equal(e.Sampled.Logprob, g.Sampled.Logprob, 1e-4f);
            Assert.Equal(e.SampledRank, g.SampledRank);
            Assert.Equal(e.Top.Select(t => t.Token), g.Top.Select(t => t.Token));
            for (int k = 0; k < e.Top.Length; k++) Assert.Equal(e.Top[k].Logprob, g.Top[k].Logprob, 1e-4f);
        }
    }

    [Fact]
    public void EachPromptTokenGetsTheLogSoftmaxAtThePositionBeforeItWhateverTheChunksAndTheBatch()
    {
        using var model = Stories();
        // 8-token steps split the prompt over several steps, beside a request decoding in the same steps.
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 64, BlockSize = 4, MaxStepTokens = 8 });
        var prompt = Tokens(model, "Once upon a time, there was a little girl named Lily. Zebra quantum tax jumped over xylophones.");
        Assert.True(prompt.Length > 20);
        var other = engine.Submit(Request(Tokens(model, "The dog ran"), 30, null));
        engine.Step();
        var scored = engine.Submit(Request(prompt, 6, Top));
        var plain = engine.Submit(Request(prompt, 6, null));
        engine.RunUntilIdle();
        Assert.All(new[] { other, scored, plain }, h => Assert.Equal(RequestStatus.Finished, h.Status));
        AssertScored(Expected(model, prompt, Top), scored, prompt);
        // Scoring changes nothing the request generates; a request that did not ask has none.
        Assert.Equal(plain.OutputTokens[0], scored.OutputTokens[0]);
        Assert.Null(plain.PromptLogprobs);
        // The rank says where the prompt's token stood: first exactly where it was the most likely.
        Assert.All(scored.PromptLogprobs!.Skip(1), e => Assert.Equal(e!.SampledRank == 1, e.Top[0].Token == e.Sampled.Token));
        Assert.Contains(scored.PromptLogprobs!.Skip(1), e => e!.SampledRank > Top);
        engine.Pool.Verify();
        Assert.Equal(0, engine.Pool.UsedBlocks);
    }

    [Fact]
    public void AScoredPromptIsComputedWholeThoughItsPrefixIsCachedAndStillLeavesItsBlocksCached()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 64, BlockSize = 4 });
        var prompt = Tokens(model, "Lily saw a big red ball in the garden and she ran to get it.");
        var first = engine.Submit(Request(prompt, 4, null));
        engine.RunUntilIdle();
        var scored = engine.Submit(Request(prompt, 4, 0));
        engine.RunUntilIdle();
        Assert.Equal(0, scored.CachedPromptTokens);
        AssertScored(Expected(model, prompt, 0), scored, prompt);
        Assert.All(scored.PromptLogprobs!.Skip(1), e => Assert.Empty(e!.Top));
        Assert.Equal(first.OutputTokens[0], scored.OutputTokens[0]);
        var after = engine.Submit(Request(prompt, 4, null));
        engine.RunUntilIdle();
        Assert.True(after.CachedPromptTokens >= prompt.Length - 4, $"{after.CachedPromptTokens} of {prompt.Length} cached");
    }

    [Fact]
    public void MaxTokensZeroOnlyScoresThePromptAndIsRefusedWithoutScoring()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 64, BlockSize = 4 });
        var prompt = Tokens(model, "The sun was hot and the sky was blue.");
        var scored = engine.Submit(Request(prompt, 0, 2) with { SampleCount = 2 });
        engine.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, scored.Status);
        Assert.Equal([FinishReason.Length, FinishReason.Length], scored.FinishReasons);
        Assert.All(scored.OutputTokens, o => Assert.Empty(o));
        AssertScored(Expected(model, prompt, 2), scored, prompt);

        var nothing = engine.Submit(Request(prompt, 0, null));
        Assert.Equal(RequestStatus.Rejected, nothing.Status);
        Assert.Contains("max tokens 0 must be at least 1 (0 only with prompt logprobs", nothing.Error);
        var negative = engine.Submit(Request(prompt, 1, -1));
        Assert.Equal(RequestStatus.Rejected, negative.Status);
        Assert.Contains("prompt logprobs -1 must be at least 0", negative.Error);
        engine.Pool.Verify();
        Assert.Equal(0, engine.Pool.UsedBlocks);
    }

    [Fact]
    public void PreemptionMidPromptStillScoresEveryTokenOnce()
    {
        using var model = Stories();
        // 12 blocks of 4 for several ~30-position requests: they preempt each other all along.
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockCount = 12, BlockSize = 4, MaxStepTokens = 8 });
        string[] texts = ["Once upon a time, there was a little girl named Lily.", "Tom had a little car that was red and fast.", "One day, a bird flew over the big green tree."];
        var prompts = texts.Select(t => Tokens(model, t)).ToArray();
        var handles = prompts.Select(p => engine.Submit(Request(p, 16, Top))).ToArray();
        engine.RunUntilIdle();
        Assert.True(engine.Metrics.Preemptions > 0);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(RequestStatus.Finished, handles[i].Status);
            AssertScored(Expected(model, prompts[i], Top), handles[i], prompts[i]);
        }
        engine.Pool.Verify();
    }
}
