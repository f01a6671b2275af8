using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Sampling;

namespace KvSharp.Tests.Policies;

/// <summary>
/// A session under sinks and a window generates far past the model's trained length in O(budget) memory; a model
/// whose GGUF names a sliding window gets it by default; a shift does not combine with a window.
/// </summary>
public class SessionPolicyTests
{
    [Fact]
    public void SinksAndAWindowGeneratePastTheTrainedLengthInBoundedMemory()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var policy = KvCachePolicy.Parse("sinks:4+window:60");
        using var session = model.CreateSession(new SessionOptions { CachePolicy = policy, ContextLength = 1600 });
        var options = new GenerationOptions { MaxTokens = 1500, StopAtEndOfGeneration = false, Sampling = new SamplingOptions { Temperature = 0 } };
        _ = string.Concat(session.Generate("Once upon a time", options));
        Assert.Equal(1500, session.LastStats!.GeneratedTokens);
        Assert.True(session.Tokens.Count > 3 * model.Config.TrainedContextLength, $"{session.Tokens.Count} tokens");
        Assert.Equal(policy, session.Cache.Policy);
        Assert.InRange(session.Cache.HeldPositions, 64, session.Cache.Capacity);
        Assert.True(session.Cache.Capacity <= 64 + 8, $"{session.Cache.Capacity} rows for a prompt of a few tokens");
    }

    [Theory]
    [InlineData("h2o:32")]
    [InlineData("snapkv:32+obs:8")]
    public void ScoreBasedPoliciesGenerateInASessionAndRefuseWhatTheyCannotDo(string text)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var policy = KvCachePolicy.Parse(text);
        using var session = model.CreateSession(new SessionOptions { CachePolicy = policy, ContextLength = 400 });
        var options = new GenerationOptions { MaxTokens = 150, StopAtEndOfGeneration = false, Sampling = new SamplingOptions { Temperature = 0 } };
        string prompt = "Once upon a time there was a little girl named Lily. She loved to play outside in the sun with her friends and her dog.";
        _ = string.Concat(session.Generate(prompt, options));
        Assert.Equal(150, session.LastStats!.GeneratedTokens);
        int promptTokens = session.Tokens.Count - 150;
        Assert.True(promptTokens > 32, $"a prompt of {promptTokens} tokens");
        if (policy.Eviction == KvEviction.HeavyHitters)
        {
            Assert.Equal(32, session.Cache.HeldPositions);
            Assert.True(session.Cache.Capacity <= 32 + promptTokens, $"{session.Cache.Capacity} rows");
        }
        else
        {
            // The prompt was compressed to 32; every generated token was appended (the last sampled one is not run yet).
            Assert.Equal(32 + 149, session.Cache.HeldPositions);
        }
        // A second turn continues the sequence: its prompt is a prefill.
        _ = string.Concat(session.Generate(" The end.", options with { MaxTokens = 5 }));
        Assert.Contains($"'{text}'", Assert.Throws<NotSupportedException>(() => session.EnsureSavable()).Message);
        Assert.Contains($"does not apply to cache policy '{text}': it evicts to its budget by itself", Assert.Throws<ArgumentException>(() =>
            model.CreateSession(new SessionOptions { CachePolicy = policy, ContextLength = 400, ContextOverflow = ContextOverflow.Shift })).Message);
    }

    [Fact]
    public void AModelsSlidingWindowIsItsDefaultPolicyAndAShiftIsRefused()
    {
        string path = GgufRewrite.Rewrite("llama-gqa.F32.gguf", add: w => w.Add("llama.attention.sliding_window", 16u));
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            Assert.Equal(16, model.Config.SlidingWindow);
            using (var session = model.CreateSession(new SessionOptions { ContextLength = 64 }))
                Assert.Equal(KvCachePolicy.SlidingWindow(16), session.Cache.Policy);
            // A context within the window never slides: the full path.
            using (var session = model.CreateSession(new SessionOptions { ContextLength = 16 }))
                Assert.Equal(KvCachePolicy.Full, session.Cache.Policy);
            Assert.Contains("does not apply to cache policy 'window:16'", Assert.Throws<ArgumentException>(() =>
                model.CreateSession(new SessionOptions { ContextLength = 64, ContextOverflow = ContextOverflow.Shift })).Message);
        }
        finally { File.Delete(path); }
    }
}
