using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Reference;
using KvSharp.Tests.Reference;

namespace KvSharp.Tests.Policies;

/// <summary>
/// H2O and SnapKV caches against the reference (<see cref="ScoredReference"/>: dense attention in double over exactly
/// the positions it holds, scores tracked its own way): the same positions held in every layer and KV head after
/// every step, and logits within the F32 reference tolerance (1e-4), on stories260K (GQA, 2 query heads per KV head).
/// H2O in chunks gives the bits of token-by-token decoding. The kept sets can agree exactly only where no eviction is
/// a near-tie: the cache sums float probabilities, the reference doubles from its own projections, and the two drift
/// apart by about 1e-5 over a hundred queries. The texts and budgets below were chosen (when written, by printing the
/// reference's smallest gap between the evicted score and the next) so that every eviction wins by at least 3e-4, and
/// every SnapKV cut by 2%; a case at 1e-5 would pass here and might not on another CPU's kernels.
/// </summary>
public class ScoredCacheMatchesReferenceTests
{
    private static int[] Prompt(int vocab, int length = 150, int seed = 29)
    {
        var rng = new Random(seed);
        return [1, .. Enumerable.Range(0, length - 1).Select(_ => rng.Next(3, vocab))];
    }

    private static void AssertSameHeld(ReferenceModel reference, KvCache cache, string what)
    {
        for (int l = 0; l < cache.LayerCount; l++)
            for (int h = 0; h < cache.KvHeadCount; h++)
                Assert.True(reference.Scored!.Held(l, h).SequenceEqual(cache.PositionsHeld(l, h)),
                    $"{what}, layer {l}, head {h}: reference holds [{string.Join(",", reference.Scored.Held(l, h))}], cache [{string.Join(",", cache.PositionsHeld(l, h))}]");
    }

    [Theory]
    [InlineData("h2o:24+recent:4", 100, 29)] // smallest eviction margin 5.8e-4
    [InlineData("h2o:32+recent:16", 150, 29)] // 3.4e-4
    [InlineData("h2o:9+recent:0", 150, 7)] // 3.1e-3
    public void HeavyHittersMatchTheReferenceAndChunksEqualTokenByToken(string text, int length, int seed)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var policy = KvCachePolicy.Parse(text);
        int vocab = model.Config.VocabSize, budget = policy.EvictionBudget!.Value;
        var prompt = Prompt(vocab, length, seed);
        var reference = new ReferenceModel(model.Config, model.Weights, 160, policy);
        var single = model.CreateCache(policy, contextLength: 160);
        var singleLogits = new List<float>();
        var expected = new List<float>();
        for (int i = 0; i < prompt.Length; i++)
        {
            singleLogits.AddRange(model.Evaluate([prompt[i]], single));
            expected.AddRange(reference.Forward(prompt[i]));
            AssertSameHeld(reference, single, $"{text} after token {i}");
        }
        ReferenceOracle.AssertClose(expected.ToArray(), singleLogits.ToArray(), vocab, "F32", $"{text} token by token");
        Assert.Equal(budget, single.HeldPositions);
        Assert.Equal(budget + 1, single.Capacity);

        var chunked = model.CreateCache(policy, contextLength: 160);
        var chunkedLogits = new List<float>();
        for (int start = 0; start < prompt.Length; start += 37)
            chunkedLogits.AddRange(model.Evaluate(prompt.AsSpan(start, Math.Min(37, prompt.Length - start)), chunked, allLogits: true));
        Assert.Equal(singleLogits, chunkedLogits);
        AssertSameHeld(reference, chunked, $"{text} in chunks of 37");
        Assert.Equal(budget + 37, chunked.Capacity);
    }

    [Theory]
    [InlineData("snapkv:40", 37)]
    [InlineData("snapkv:24+obs:4", 37)]
    [InlineData("snapkv:48+obs:32", 20)]
    public void SnapKvMatchesTheReferenceAfterEveryPrefillAndDecodeAppends(string text, int chunk)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var policy = KvCachePolicy.Parse(text);
        int vocab = model.Config.VocabSize, budget = policy.EvictionBudget!.Value;
        var prompt = Prompt(vocab, 170);
        var reference = new ReferenceModel(model.Config, model.Weights, 180, policy);
        var cache = model.CreateCache(policy, contextLength: 180);
        var logits = new List<float>();
        var expected = new List<float>();
        // Prefills of `chunk` tokens up to 150 (each compresses to B), then 20 decode steps (each appends).
        for (int start = 0; start < 150; start += chunk)
        {
            var piece = prompt[start..Math.Min(150, start + chunk)];
            logits.AddRange(model.Evaluate(piece, cache, allLogits: true));
            foreach (var row in reference.Prefill(piece)) expected.AddRange(row);
            AssertSameHeld(reference, cache, $"{text} after the prefill from {start}");
            Assert.Equal(Math.Min(budget, start + piece.Length), cache.HeldPositions);
        }
        for (int i = 150; i < 170; i++)
        {
            logits.AddRange(model.Evaluate([prompt[i]], cache));
            expected.AddRange(reference.Forward(prompt[i]));
        }
        AssertSameHeld(reference, cache, $"{text} after decoding");
        Assert.Equal(budget + 20, cache.HeldPositions);
        ReferenceOracle.AssertClose(expected.ToArray(), logits.ToArray(), vocab, "F32", text);
    }

    [Theory]
    [InlineData(KvElementType.F16)]
    [InlineData(KvElementType.Q8_0)]
    [InlineData(KvElementType.Q4_0)]
    public void EveryTypeWhoseRowsStandAloneRuns(KvElementType type)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = Prompt(model.Config.VocabSize, 100);
        // H2O: a chunk gives the bits of token by token whatever the rows are stored as.
        var policy = KvCachePolicy.Parse("h2o:24+recent:4");
        var single = model.CreateCache(policy, contextLength: 160, elementType: type);
        var singleLogits = new List<float>();
        foreach (int token in prompt) singleLogits.AddRange(model.Evaluate([token], single));
        var chunked = model.CreateCache(policy, contextLength: 160, elementType: type);
        Assert.Equal(singleLogits, model.Evaluate(prompt, chunked, allLogits: true));
        Assert.Equal(24, chunked.HeldPositions);
        // SnapKV: a prefill of 60 compressed to 24, then 40 decode steps appended.
        var snap = model.CreateCache(KvCachePolicy.Parse("snapkv:24+obs:4"), contextLength: 160, elementType: type);
        var logits = model.Evaluate(prompt.AsSpan(0, 60), snap, allLogits: true).ToList();
        for (int i = 60; i < prompt.Length; i++) logits.AddRange(model.Evaluate([prompt[i]], snap));
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        Assert.Equal(24 + 40, snap.HeldPositions);
    }

    [Theory]
    [InlineData("h2o:150")]
    [InlineData("snapkv:150")]
    public void ABudgetAsLongAsTheTextIsTheFullCacheBitForBit(string text)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = Prompt(model.Config.VocabSize);
        var full = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 160), allLogits: true);
        var scored = model.CreateCache(KvCachePolicy.Parse(text), contextLength: 160);
        Assert.Equal(full, model.Evaluate(prompt, scored, allLogits: true));
        Assert.Equal(Enumerable.Range(0, 150), scored.PositionsHeld(2, 1));
    }
}
