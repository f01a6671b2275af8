using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// Lossless cache modes give the logits of recomputing without a cache at every step — bit for bit, since every
/// kernel is batch-invariant — for MHA, GQA and MQA models; and a reset leaves no trace of the previous request.
/// </summary>
public class CacheEquivalenceTests
{
    public static TheoryData<string> Models() => new() { "llama-tied.F32", "llama-gqa.Q8_0", "qwen2-bias.Q4_K_M", "stories260K.F16" };

    private static LlmModel Load(string fixture) =>
        LlmModel.Load(TestPaths.Fixture(fixture + ".gguf"), new ModelLoadOptions { Threads = 2 });

    /// <summary>Logits at every decode step of a greedy run of 24 tokens after a 16-token prompt.</summary>
    private static List<float[]> StepLogits(LlmModel model, KvCacheMode mode)
    {
        using var session = model.CreateSession(new SessionOptions { CacheMode = mode, ContextLength = 64 });
        var prompt = Fixtures.All[0].PromptIds[..16];
        var steps = new List<float[]>();
        session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 0 }).ToList();
        for (int i = 0; i < 24; i++)
        {
            var logits = session.NextTokenLogits().ToArray();
            steps.Add(logits);
            session.GenerateTokens([Sampler.ArgMax(logits)], new GenerationOptions { MaxTokens = 0 }).ToList();
        }
        return steps;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void ContiguousAndStaticEqualNoCacheAtEveryStep(string fixture)
    {
        using var model = Load(fixture);
        var none = StepLogits(model, KvCacheMode.None);
        var contiguous = StepLogits(model, KvCacheMode.Contiguous);
        var fixedSize = StepLogits(model, KvCacheMode.Static);
        for (int i = 0; i < none.Count; i++)
        {
            Assert.Equal(none[i], contiguous[i]);
            Assert.Equal(none[i], fixedSize[i]);
        }
    }

    [Fact]
    public void ResetSessionShowsNoTraceOfThePreviousRequest()
    {
        using var model = Load("llama-gqa.F32");
        var options = new GenerationOptions { MaxTokens = 20, StopAtEndOfGeneration = false };
        using var fresh = model.CreateSession();
        string expected = string.Concat(fresh.Generate("Once upon a time", options));

        using var reused = model.CreateSession();
        string other = string.Concat(reused.Generate("The big red ball was in the park and she ran", options));
        reused.Reset();
        Assert.Equal(0, reused.Cache.Length);
        Assert.Empty(reused.Tokens);
        string again = string.Concat(reused.Generate("Once upon a time", options));
        Assert.Equal(expected, again);
        Assert.NotEqual(expected, other);
        // Positions past the new sequence were zeroed, not just hidden.
        for (int l = 0; l < model.Config.LayerCount; l++)
            Assert.All(reused.Cache.KeyRows(l, 0)[(reused.Cache.Length * reused.Cache.Format.RowBytes(model.Config.HeadDim))..].ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void TruncateRewindsToAnEarlierPointOfTheConversation()
    {
        using var model = Load("llama-gqa.Q4_0");
        var options = new GenerationOptions { MaxTokens = 12, StopAtEndOfGeneration = false };
        using var session = model.CreateSession();
        string first = string.Concat(session.Generate("Lily saw a ball", options));
        int afterFirst = session.Tokens.Count;
        string second = string.Concat(session.Generate(" Then", options));
        session.Truncate(afterFirst);
        Assert.Equal(second, string.Concat(session.Generate(" Then", options)));
        Assert.NotEmpty(first);
    }

    [Fact]
    public void SecondTurnReusesTheCacheOfTheFirst()
    {
        using var model = Load("llama-gqa.F32");
        var options = new GenerationOptions { MaxTokens = 8, StopAtEndOfGeneration = false };
        using var session = model.CreateSession();
        _ = string.Concat(session.Generate("Once upon a time", options));
        int before = session.Tokens.Count;
        _ = string.Concat(session.Generate(" there was", options));
        Assert.Equal(before - 1, session.LastStats!.ReusedTokens); // all but the last sampled token were cached
        Assert.Equal(session.Tokens.Count - 1, session.Cache.Length);
    }
}
