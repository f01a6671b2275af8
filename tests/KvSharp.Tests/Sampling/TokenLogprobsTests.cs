using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

public class TokenLogprobsTests
{
    [Fact]
    public void LogprobsAreTheLogSoftmaxAndTopIsMostLikelyFirst()
    {
        float[] logits = [1f, 3f, 2f, 3f, -5f];
        double logTotal = Math.Log(logits.Sum(l => Math.Exp(l)));
        var lp = TokenLogprobs.From(logits, 2, top: 3);
        Assert.Equal(2, lp.Sampled.Token);
        Assert.Equal(2 - logTotal, lp.Sampled.Logprob, 1e-6);
        // Ties go to the lower id, as the sampler's own ordering does.
        Assert.Equal([1, 3, 2], lp.Top.Select(t => t.Token));
        Assert.Equal(3 - logTotal, lp.Top[0].Logprob, 1e-6);
        Assert.Equal(1 - logTotal, TokenLogprobs.From(logits, 0, top: 0).Sampled.Logprob, 1e-6);
        Assert.Empty(TokenLogprobs.From(logits, 0, top: 0).Top);
        Assert.Equal(5, TokenLogprobs.From(logits, 0, top: 9).Top.Length);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(20)]
    public void OverAWholeVocabularyTopIsTheSortedHeadAndTheRankCountsTheLargerLogits(int top)
    {
        var rng = new Random(11 + top);
        // Coarse values, so ties occur (and go to the lower id), over a length that is not a multiple of 8.
        float[] logits = [.. Enumerable.Range(0, 32003).Select(_ => (float)Math.Round(rng.NextDouble() * 40 - 20, 1))];
        var sorted = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        double max = logits.Max(), logTotal = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        foreach (int token in new[] { sorted[0], sorted[top], sorted[^1], 7 })
        {
            var lp = TokenLogprobs.From(logits, token, top);
            Assert.Equal(sorted[..top], lp.Top.Select(t => t.Token));
            Assert.Equal(logits[token] - logTotal, lp.Sampled.Logprob, 1e-4);
            Assert.Equal(logits.Count(l => l > logits[token]) + 1, lp.SampledRank);
        }
    }

    [Fact]
    public void TheEngineReportsLogprobsOfTheLogitsBeforePenaltiesOnlyWhenAsked()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 64 });
        var prompt = model.Tokenizer.Encode("Once upon a time", true, false);
        var greedy = new GenerationOptions { MaxTokens = 4, StopAtEndOfGeneration = false };
        var plain = engine.Submit(new EngineRequest { PromptTokens = prompt, Options = greedy });
        // A penalty so strong it changes what is sampled, never what the logprobs say.
        var penalized = engine.Submit(new EngineRequest
        {
            PromptTokens = prompt,
            Options = greedy with { TopLogprobs = 2, Sampling = new SamplingOptions { PresencePenalty = 100 } },
        });
        engine.RunUntilIdle();
        var plainTokens = Drain(plain);
        Assert.All(plainTokens, t => Assert.Null(t.Logprobs));
        var scored = Drain(penalized).Where(t => t.TokenId >= 0).ToList();
        Assert.Equal(4, scored.Count);

        using var session = model.CreateSession(new SessionOptions { ContextLength = 128 });
        session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 0 }).ToList();
        foreach (var t in scored)
        {
            float[] logits = session.NextTokenLogits().ToArray();
            var expected = TokenLogprobs.From(logits, t.TokenId, 2);
            Assert.Equal(expected.Sampled, t.Logprobs!.Sampled);
            Assert.Equal(expected.Top, t.Logprobs.Top);
            session.GenerateTokens([t.TokenId], new GenerationOptions { MaxTokens = 0 }).ToList();
        }
    }

    private static List<GeneratedToken> Drain(RequestHandle handle)
    {
        var list = new List<GeneratedToken>();
        while (handle.Stream.TryRead(out var t)) list.Add(t);
        return list;
    }
}
