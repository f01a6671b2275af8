using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Tests.Cli;
using KvSharp.Tests.Models;
using KvSharp.Tensors;

namespace KvSharp.Tests.Cache;

/// <summary>
/// The F16 KV cache: keys and values rounded to binary16 on write and widened exactly on read, so it computes what an
/// F32 cache holding the rounded values computes, bit for bit, and it keeps the F32 cache's invariances. Covered
/// elsewhere with the F16 cache too: logits against llama.cpp's F16-KV dumps and batch == sequential
/// (<see cref="LlamaCppParityTests"/>), paged == contiguous (<see cref="Paged.PagedAttentionTests"/>).
/// </summary>
public class F16KvCacheTests
{
    [Theory]
    [InlineData(1, 1, 64, 96)]
    [InlineData(2, 5, 64, 96)]
    [InlineData(4, 16, 64, 96)]
    [InlineData(1, 61, 64, 96)]
    // Blocks of one and two queries read the halves in registers, larger ones through a widened tile; head_dims with
    // a last 8-column chunk (40, 72) or a scalar tail (20), and ends that leave part tiles and odd keys.
    [InlineData(1, 1, 40, 77)]
    [InlineData(2, 1, 72, 45)]
    [InlineData(1, 2, 128, 70)]
    [InlineData(3, 1, 48, 101)]
    [InlineData(1, 1, 20, 37)]
    [InlineData(2, 3, 20, 53)]
    public void HalfRowsAttendExactlyLikeFloatRowsHoldingTheRoundedValues(int group, int tokens, int headDim, int positions)
    {
        var rng = new Random(group * 100 + tokens + headDim * 7 + positions);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var keys = Random(positions * headDim);
        var values = Random(positions * headDim);
        var queries = Random(tokens * group * headDim);
        // Values a half holds only as a subnormal, its largest finite values and signed zeros widen exactly too.
        float[] special = [3e-7f, -5.96e-8f, 1e-5f, 65504f, -65504f, 0f, -0f, 6.1e-5f];
        for (int i = 0; i < special.Length; i++)
        {
            values[i * 13 % values.Length] = special[i];
            keys[i * 17 % keys.Length] = special[i] / 65504f;
        }
        var halfKeys = keys.Select(x => (Half)x).ToArray();
        var halfValues = values.Select(x => (Half)x).ToArray();
        var roundedKeys = halfKeys.Select(h => (float)h).ToArray();
        var roundedValues = halfValues.Select(h => (float)h).ToArray();

        int first = positions - tokens, width = group * headDim;
        var expected = new float[tokens * width];
        var actual = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(roundedKeys, roundedValues, headDim), 0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvF16, KvF16>, KvF16>(new QueryBlock(queries, actual, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(halfKeys, halfValues, headDim), 0.125f, scratch);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
        Assert.All(actual, x => Assert.True(float.IsFinite(x)));
    }

    [Theory]
    [InlineData(60000f)]
    [InlineData(-1e5f)]
    public void LargeQueriesScoreHalfKeysExactlyLikeFloatKeys(float large)
    {
        // Half keys are read scaled down and queries scaled up by 2^112; a query element of 2^16 or more would overflow
        // that, so such a block must take another exact path.
        const int headDim = 64, positions = 50;
        var rng = new Random(11);
        float[] Random(int n, double range) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * range)).ToArray();
        var halfKeys = Random(positions * headDim, 1e-3).Select(x => (Half)x).ToArray();
        var halfValues = Random(positions * headDim, 1).Select(x => (Half)x).ToArray();
        var queries = Random(headDim, 1);
        queries[5] = large;
        var expected = new float[headDim];
        var actual = new float[headDim];
        var scratch = new float[CausalAttention.ScratchLength(1)];
        CausalAttention.Attend(QueryBlock.Single(queries, expected, 1, headDim, positions),
            ContiguousKvRows.Of(halfKeys.Select(h => (float)h).ToArray(), halfValues.Select(h => (float)h).ToArray(), headDim),
            0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvF16, KvF16>, KvF16>(QueryBlock.Single(queries, actual, 1, headDim, positions),
            ContiguousKvRows.Of(halfKeys, halfValues, headDim), 0.125f, scratch);
        Assert.All(actual, x => Assert.True(float.IsFinite(x)));
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void InfinitiesInHalfValuesReachTheOutputAsInFloatRows()
    {
        // A value row holding +Inf and NaN: outputs that weigh it are Inf or NaN, with the same bits as from float rows.
        const int headDim = 48, positions = 40;
        var rng = new Random(5);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var keys = Random(positions * headDim);
        var values = Random(positions * headDim);
        var queries = Random(2 * headDim);
        values[7 * headDim + 3] = float.PositiveInfinity;
        values[9 * headDim + 40] = float.NegativeInfinity;
        values[30 * headDim + 17] = float.NaN;
        var halfKeys = keys.Select(x => (Half)x).ToArray();
        var halfValues = values.Select(x => (Half)x).ToArray();
        var expected = new float[2 * headDim];
        var actual = new float[2 * headDim];
        var scratch = new float[CausalAttention.ScratchLength(2)];
        CausalAttention.Attend(new QueryBlock(queries, expected, 1, 2 * headDim, positions - 1, 2, headDim),
            ContiguousKvRows.Of(halfKeys.Select(h => (float)h).ToArray(), halfValues.Select(h => (float)h).ToArray(), headDim),
            0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvF16, KvF16>, KvF16>(new QueryBlock(queries, actual, 1, 2 * headDim, positions - 1, 2, headDim),
            ContiguousKvRows.Of(halfKeys, halfValues, headDim), 0.125f, scratch);
        Assert.Equal(float.PositiveInfinity, actual[3]);
        Assert.True(float.IsNaN(actual[17]));
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void F16HalvesTheBytesPerTokenAndDoublesTheBlocksInABudget()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var c = model.Config;
        var f32 = model.CreateCache(KvCacheMode.Static, 100);
        var f16 = model.CreateCache(KvCacheMode.Static, 100, KvElementType.F16);
        Assert.Equal(2L * c.LayerCount * c.KvHeadCount * c.HeadDim * 2, f16.BytesPerToken);
        Assert.Equal(f32.BytesPerToken, 2 * f16.BytesPerToken);
        Assert.Equal(f32.AllocatedBytes, 2 * f16.AllocatedBytes);

        long budget = 40 * 16 * f32.BytesPerToken;
        using var pool32 = KvBlockPool.FromBudget(c, 16, budget);
        using var pool16 = KvBlockPool.FromBudget(c, 16, budget, elementType: KvElementType.F16);
        Assert.Equal(40, pool32.BlockCount);
        Assert.Equal(80, pool16.BlockCount);
        Assert.Equal(pool32.TotalBytes, pool16.TotalBytes);
    }

    [Fact]
    public void TruncateAndResetClearAnF16Cache()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var cache = model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.F16);
        var full = model.Evaluate([1, 410, 469, 347, 261, 400], cache);
        cache.Truncate(4);
        Assert.All(cache.KeyRows(0, 0)[(4 * model.Config.HeadDim * 2)..].ToArray(), b => Assert.Equal(0, b));
        Assert.Contains(cache.KeyRows(0, 0)[..(4 * model.Config.HeadDim * 2)].ToArray(), b => b != 0);
        Assert.Equal(full, model.Evaluate([261, 400], cache));
        cache.Reset();
        Assert.Equal(0, cache.Length);
        Assert.All(cache.ValueRows(model.Config.LayerCount - 1, 0).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void UnknownTypesAreClearErrors()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        Assert.Contains("expected f32, f16, q8_0, q4_0, kivi4 or kivi2", Assert.Throws<ArgumentException>(() => KvElementTypes.Parse("q9")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCache(model.Config, KvCacheMode.Static, 8, (KvElementType)7));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBlockPool(model.Config, 4, 2, elementType: (KvElementType)7));

        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "4", "--kv-type", "q9");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--kv-type must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'q9'", r.Stderr);
    }

    [Fact]
    public void RunCommandWithAnF16CacheReportsHalfTheBytes()
    {
        var f32 = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "8", "--threads", "2");
        var f16 = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type", "f16");
        Assert.Equal(0, f16.ExitCode);
        Assert.Contains("KV cache (F16): 640 bytes/token", f16.Stderr);
        Assert.Contains("KV cache (F32): 1280 bytes/token", f32.Stderr);
    }
}
