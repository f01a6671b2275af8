using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Reference;
using KvSharp.Tests.Reference;

namespace KvSharp.Tests.Policies;

/// <summary>
/// A windowed contiguous cache computes what the reference computes when every query attends over exactly the
/// positions the policy keeps, at the positions it assigns (<see cref="ReferenceModel.Policy"/>: keys kept before
/// RoPE and rotated per query), within the F32 reference tolerance: 150 tokens through windows of 40 (the ring
/// wraps three times) and sinks of 4 plus a window of 28 (the window moves 118 times), as a prefill in chunks of 37
/// (chunks that wrap the ring) and token by token. Chunked and token-by-token runs agree bit for bit.
/// </summary>
public class WindowedCacheMatchesReferenceTests
{
    private static int[] Prompt(int vocab)
    {
        var rng = new Random(29);
        return [1, .. Enumerable.Range(0, 149).Select(_ => rng.Next(3, vocab))];
    }

    [Theory]
    [InlineData("window:40")]
    [InlineData("sinks:4+window:28")]
    [InlineData("sinks:1+window:7")]
    public void MatchesTheReferenceInChunksAndTokenByToken(string text)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var policy = KvCachePolicy.Parse(text);
        int vocab = model.Config.VocabSize;
        var prompt = Prompt(vocab);
        var expected = ReferenceOracle.Logits(new ReferenceModel(model.Config, model.Weights, 160, policy), prompt);

        var chunked = model.CreateCache(policy, contextLength: 160);
        var chunkedLogits = new List<float>();
        for (int start = 0; start < prompt.Length; start += 37)
            chunkedLogits.AddRange(model.Evaluate(prompt.AsSpan(start, Math.Min(37, prompt.Length - start)), chunked, allLogits: true));
        ReferenceOracle.AssertClose(expected, chunkedLogits.ToArray(), vocab, "F32", $"{text} in chunks of 37");

        var single = model.CreateCache(policy, contextLength: 160);
        var singleLogits = new List<float>();
        foreach (int token in prompt) singleLogits.AddRange(model.Evaluate([token], single));
        Assert.Equal(chunkedLogits, singleLogits);
        Assert.True(single.Capacity <= policy.Budget, $"{text}: {single.Capacity} rows allocated");
        Assert.Equal(policy.Budget, single.HeldPositions);
        Assert.True(chunked.Capacity <= policy.Budget + 36, $"{text}: {chunked.Capacity} rows for chunks of 37");
    }

    [Fact]
    public void AWindowAsLongAsTheTextIsTheFullCacheBitForBit()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = Prompt(model.Config.VocabSize);
        var full = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 160), allLogits: true);
        var windowed = model.Evaluate(prompt, model.CreateCache(KvCachePolicy.SlidingWindow(150), contextLength: 160), allLogits: true);
        Assert.Equal(full, windowed);
    }

    [Fact]
    public void RefusesWhatAWindowCannotDo()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var cache = model.CreateCache(KvCachePolicy.SlidingWindow(8), contextLength: 64);
        // One token at a time the ring stays at 8 rows: position 19 overwrote 11.
        foreach (int token in Prompt(model.Config.VocabSize)[..20]) model.Evaluate([token], cache);
        Assert.Equal(8, cache.Capacity);
        Assert.Contains("does not apply", Assert.Throws<InvalidOperationException>(() => cache.Shift(1, 4, model.Rope)).Message);
        Assert.Contains("no longer holds", Assert.Throws<InvalidOperationException>(() => cache.Truncate(5)).Message);
        Assert.Contains("positions from 11", Assert.Throws<InvalidOperationException>(() => cache.Truncate(18)).Message);
        cache.Truncate(19);
        Assert.Contains("more than the context length of 64",
            Assert.Throws<ArgumentException>(() => model.CreateCache(KvCachePolicy.SlidingWindow(65), contextLength: 64)).Message);
        Assert.Contains("rotary embedding", Assert.Throws<ArgumentException>(() =>
            new KvCache(model.Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("sinks:4+window:8"))).Message);
    }
}
