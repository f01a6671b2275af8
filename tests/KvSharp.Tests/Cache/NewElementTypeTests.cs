using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Sampling;

namespace KvSharp.Tests.Cache;

/// <summary>
/// Adding a KV element type is adding one file: <see cref="KvBf16"/>, defined in this test project, runs through the
/// attention kernel, the contiguous and static caches and the paged pool with no edit to any of them, and computes
/// exactly what float rows holding its (rounded) values compute.
/// </summary>
public class NewElementTypeTests
{
    private static readonly KvElementFormat Bf16 = KvElementFormat.Of<KvBf16>();

    private static float[] Random(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();

    private static IEnumerable<int> Bits(float[] x) => x.Select(BitConverter.SingleToInt32Bits);

    [Theory]
    [InlineData(1, 1, 64, 96)]
    [InlineData(4, 1, 64, 200)]
    [InlineData(2, 5, 48, 77)]
    [InlineData(1, 40, 20, 70)]
    public void AttentionOverItsRowsEqualsAttentionOverFloatRowsHoldingItsValues(int group, int tokens, int headDim, int positions)
    {
        var rng = new Random(group + tokens * 10 + headDim * 100 + positions);
        var keys = Random(rng, positions * headDim);
        var values = Random(rng, positions * headDim);
        var queries = Random(rng, tokens * group * headDim);
        var stored = (Keys: new byte[positions * headDim * 2], Values: new byte[positions * headDim * 2]);
        for (int p = 0; p < positions; p++)
        {
            KvBf16.Write(keys.AsSpan(p * headDim, headDim), stored.Keys.AsSpan(p * headDim * 2, headDim * 2), default);
            KvBf16.Write(values.AsSpan(p * headDim, headDim), stored.Values.AsSpan(p * headDim * 2, headDim * 2), default);
        }

        int first = positions - tokens, width = group * headDim;
        var expected = new float[tokens * width];
        var actual = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(keys.Select(KvBf16.Round).ToArray(), values.Select(KvBf16.Round).ToArray(), headDim), 0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvBf16, KvBf16>, KvBf16>(new QueryBlock(queries, actual, tokens, width, first, group, headDim),
            new ContiguousKvRows<KvBf16, KvBf16>(stored.Keys, stored.Values, headDim), 0.125f, scratch);
        Assert.Equal(Bits(expected), Bits(actual));
        Assert.NotEqual(Bits(expected), Bits(RunFloat(keys, values)));

        float[] RunFloat(float[] k, float[] v)
        {
            var output = new float[tokens * width];
            CausalAttention.Attend(new QueryBlock(queries, output, tokens, width, first, group, headDim), ContiguousKvRows.Of(k, v, headDim), 0.125f, scratch);
            return output;
        }
    }

    [Theory]
    [InlineData(KvCacheMode.Contiguous)]
    [InlineData(KvCacheMode.Static)]
    [InlineData(null)]
    public void EveryCacheStoresItAndAttendsExactlyLikeAnF32CacheHoldingItsValues(KvCacheMode? mode)
    {
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var config = model.Config;
        const int positions = 70;
        using var bf16Pool = new KvBlockPool(config, 16, 8, Bf16);
        using var f32Pool = new KvBlockPool(config, 16, 8);
        IKvStore bf16 = mode is { } m ? new KvCache(config, m, 128, Bf16) : new PagedKvSequence(bf16Pool, 128);
        IKvStore f32 = mode is { } n ? new KvCache(config, n, 128) : new PagedKvSequence(f32Pool, 128);
        var rng = new Random(3);
        bf16.Reserve(positions);
        f32.Reserve(positions);
        for (int layer = 0; layer < config.LayerCount; layer++)
            for (int p = 0; p < positions; p++)
            {
                var keys = Random(rng, config.KvDim);
                var values = Random(rng, config.KvDim);
                bf16.Write(layer, p, keys, values);
                f32.Write(layer, p, keys.Select(KvBf16.Round).ToArray(), values.Select(KvBf16.Round).ToArray());
            }
        bf16.Commit(positions);
        f32.Commit(positions);

        int group = config.GroupSize, headDim = config.HeadDim, tokens = 3, width = group * headDim;
        var queries = Random(rng, tokens * width);
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        foreach (int t in new[] { 1, tokens })
            for (int layer = 0; layer < config.LayerCount; layer++)
                for (int h = 0; h < config.KvHeadCount; h++)
                {
                    var expected = new float[t * width];
                    var actual = new float[t * width];
                    f32.Prefetch(layer, h, positions);
                    bf16.Prefetch(layer, h, positions);
                    f32.Attend(layer, h, new QueryBlock(queries, expected, t, width, positions - t, group, headDim), 0.125f, scratch);
                    bf16.Attend(layer, h, new QueryBlock(queries, actual, t, width, positions - t, group, headDim), 0.125f, scratch);
                    Assert.Equal(Bits(expected), Bits(actual));
                }
    }

    [Fact]
    public void AModelRunsOnItPagedEqualsContiguousAndStaysCloseToF32()
    {
        using var model = LlmModel.Load(TestPaths.Fixture("qwen2-bias.F32.gguf"), new ModelLoadOptions { Threads = 2 });
        int[] prompt = [1, 45, 300, 12, 99, 7, 410, 88, 23, 5, 61, 200, 17, 3, 250, 42, 11, 9, 130, 77];
        int vocab = model.Config.VocabSize;
        var cache = new KvCache(model.Config, KvCacheMode.Contiguous, 64, Bf16);
        var logits = model.Evaluate(prompt, cache);
        var f32 = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64));
        float max = f32.Zip(logits, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max > 0 && max < 0.15f, $"max |logit(BF16 cache) - logit(F32 cache)| = {max}");
        var next = model.Evaluate([Sampler.ArgMax(logits)], cache);

        using var pool = new KvBlockPool(model.Config, 16, 8, Bf16);
        var paged = new PagedKvSequence(pool, 64);
        var forward = model.CreateForwardPass();
        var pagedLogits = new float[vocab];
        forward.Forward(prompt, paged, pagedLogits, allLogits: false);
        Assert.Equal(logits, pagedLogits);
        forward.Forward([Sampler.ArgMax(logits)], paged, pagedLogits, allLogits: false);
        Assert.Equal(next, pagedLogits);

        Assert.Equal("BF16", cache.Format.Name);
        Assert.Same(KvElementFormat.Of(KvElementType.Q8_0), KvElementFormat.Of<KvSharp.Tensors.KvQ8>());
        Assert.Equal(KvElementType.F16, KvElementFormat.Of<KvSharp.Tensors.KvF16>().Type);
        Assert.Null(cache.Format.Type);
        Assert.Equal(KvSizing.BytesPerToken(model.Config, KvElementType.F16), cache.BytesPerToken);
        Assert.Equal(pool.TotalBytes, 8 * 16 * cache.BytesPerToken);
        Assert.Contains("BF16", Assert.Throws<InvalidOperationException>(() => cache.ElementType).Message);
    }
}
