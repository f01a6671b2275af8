using KvSharp.Cache;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Sampling;
using KvSharp.Tests.Reference;
using static KvSharp.Tests.Models.DeepSeek2Variants;

namespace KvSharp.Tests.Models;

/// <summary>
/// deepseek2's latent attention as a cache (its logits against llama.cpp are in <see cref="ArchitectureParityTests"/>):
/// one row of the rotated key part and the latent per token and layer, on every cache kind and element type, and a
/// step of many sequences giving each the bits it gets alone.
/// </summary>
public class LatentAttentionTests
{
    private static LlmModel Load(ArchitectureVariants.Variant v) =>
        LlmModel.Load(ArchitectureVariants.Path(v), new ModelLoadOptions { Threads = 2, ContextLength = 512 });

    [Fact]
    public void TheCacheHoldsTheLatentNotTheHeadsKeysAndValues()
    {
        using var model = Load(ArchitectureVariants.DeepSeek2F32);
        var c = model.Config;
        Assert.Equal(new LatentAttentionShape(QueryRank, KvRank, Nope, Rope, ValueDim), c.LatentAttention);
        Assert.Equal((8, 1, Rope + KvRank, Rope), (c.HeadCount, c.KvHeadCount, c.HeadDim, c.RopeDimensions));
        // 2 layers x (16 + 64) floats, once (the values are the keys): 640 bytes a token in F32, where the heads' own
        // keys and values (8 x (48 + 32) per layer, as llama.cpp b4748 caches them) would take 5,120.
        Assert.Equal(640, c.KvBytesPerToken(4));
        Assert.Equal(640, KvSizing.BytesPerToken(c, KvElementType.F32));
        Assert.Equal(8 * 640, 4L * c.LayerCount * Heads * (Nope + Rope + ValueDim));
        // Layer 0 is dense, layer 1 has the experts and the shared one; both layers have latent weights.
        Assert.Null(model.Weights.Layers[0].Experts);
        Assert.NotNull(model.Weights.Layers[1].Experts!.Shared);
        Assert.All(model.Weights.Layers, l => Assert.Equal(Heads, l.Latent!.KeyAbsorb.Length));
    }

    [Fact]
    public void TheSplitLayoutIsTheSameModel()
    {
        // llama.cpp's newer files split attn_kv_b into attn_k_b (transposed) and attn_v_b; the expansions read from
        // either are the same floats, so the logits are the same bits.
        using var older = Load(ArchitectureVariants.DeepSeek2F32);
        using var split = Load(ArchitectureVariants.DeepSeek2SplitF32);
        Assert.Equal(older.Config.LatentAttention, split.Config.LatentAttention);
        Assert.Equal(older.Config.HeadDim, split.Config.HeadDim);
        var prompt = Fixtures.All[0].PromptIds;
        Assert.Equal(older.Evaluate(prompt, older.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true),
            split.Evaluate(prompt, split.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true));
    }

    [Fact]
    public void EveryCacheKindGivesTheContiguousLogits()
    {
        using var model = Load(ArchitectureVariants.DeepSeek2V3F32);
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds;
        var expected = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true);

        var cache = model.CreateCache(KvCacheMode.Static, 256);
        var sequential = new float[prompt.Length * vocab];
        for (int t = 0; t < prompt.Length; t++) model.Evaluate(prompt.AsSpan(t, 1), cache).CopyTo(sequential, t * vocab);
        Assert.Equal(expected, sequential);

        ReferenceOracle.AssertClose(expected, FastPathMatchesReferenceTests.PagedPrefillThenDecode(model, prompt, 16, 256), vocab, "F32", "deepseek2 paged cache");
    }

    [Theory]
    [InlineData(KvElementType.F16, 0.95)]
    [InlineData(KvElementType.Q8_0, 0.95)]
    [InlineData(KvElementType.Q4_0, 0.6)]
    [InlineData(KvElementType.Kivi4, 0.6)]
    public void QuantizedLatentsKeepMostOfTheChoices(KvElementType type, double agreement)
    {
        // The latent and the rotated key part are stored in the cache's type like any key: the next-token choice of
        // each prompt position mostly survives it (F16 and Q8_0 nearly always).
        using var model = Load(ArchitectureVariants.DeepSeek2F32);
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds;
        var exact = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true);
        var stored = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256, type), allLogits: true);
        Assert.All(stored, x => Assert.True(float.IsFinite(x)));
        int same = Enumerable.Range(0, prompt.Length).Count(t =>
            Sampler.ArgMax(exact.AsSpan(t * vocab, vocab)) == Sampler.ArgMax(stored.AsSpan(t * vocab, vocab)));
        Assert.True(same >= agreement * prompt.Length, $"{type}: {same} of {prompt.Length} positions keep their choice");
        Assert.NotEqual(exact, stored);
    }

    [Fact]
    public void ManySequencesInOneStepGetTheBitsEachGetsAlone()
    {
        using var model = Load(ArchitectureVariants.DeepSeek2V3F32);
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds.AsSpan(0, 24).ToArray();
        var forward = model.CreateForwardPass();
        var caches = prompt.Select(_ => model.CreateCache(KvCacheMode.Contiguous, 8)).ToArray();
        var together = new float[prompt.Length * vocab];
        forward.Forward(prompt, caches.Select(kv => new BatchSegment(kv, 1, LogitsRequest.Last)).ToArray(), together);
        for (int i = 0; i < prompt.Length; i++)
        {
            var alone = model.Evaluate([prompt[i]], model.CreateCache(KvCacheMode.Contiguous, 8));
            Assert.True(alone.AsSpan().SequenceEqual(together.AsSpan(i * vocab, vocab)), $"token {i}: alone differs from the batched step");
        }
    }

    [Theory]
    [InlineData("no value half", "'blk.0.attn_v_b.weight' is missing")]
    [InlineData("expert groups", "experts chosen from 2 of 4 groups")]
    [InlineData("gating 3", "'deepseek2.expert_gating_func' = 3 is not supported")]
    [InlineData("no latent rank", "'deepseek2.attention.kv_lora_rank' is missing")]
    public void AFileThatCannotBeReadRightIsRefusedByName(string damage, string message)
    {
        using var g = GgufFile.Open(ArchitectureVariants.Path(ArchitectureVariants.DeepSeek2SplitF32));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key != "general.alignment" && !(damage == "no latent rank" && key == "deepseek2.attention.kv_lora_rank")
                && !(damage == "gating 3" && key == "deepseek2.expert_gating_func"))
                w.Add(key, g.Metadata[key]);
        if (damage == "expert groups") w.Add("deepseek2.expert_group_count", 4u).Add("deepseek2.expert_group_used_count", 2u);
        if (damage == "gating 3") w.Add("deepseek2.expert_gating_func", 3u);
        foreach (var t in g.Tensors)
            if (!(damage == "no value half" && t.Name == "blk.0.attn_v_b.weight"))
                w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray());
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => LlmModel.Load(path).Dispose());
            Assert.IsType<ModelFormatException>(e);
            Assert.Contains(message, e.Message);
        }
        finally { File.Delete(path); }
    }
}
