using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Reference;
using KvSharp.Tensors;

namespace KvSharp.Tests.Cache;

/// <summary>
/// Keys and values stored as different types (llama.cpp's -ctk / -ctv). Each side is read with its own type's loads,
/// in registers or from a tile of floats on its own, so attention over a mixed pair computes exactly what float rows
/// holding each side's read-back values compute; paged equals contiguous bit for bit; and a pair of the same type is
/// the uniform format itself.
/// </summary>
public class MixedKvTypeTests
{
    /// <summary>Rows of <typeparamref name="TKv"/> holding <paramref name="x"/>, and the floats they read back as.</summary>
    private static (byte[] Rows, byte[] Side, float[] Back) Store<TKv>(float[] x, int positions, int headDim) where TKv : struct, IKvElement<TKv>
    {
        int rowBytes = TKv.RowBytes(headDim), sideBytes = TKv.SideBytes(headDim);
        var (rows, side, back) = (new byte[positions * rowBytes], new byte[positions * sideBytes], new float[x.Length]);
        for (int p = 0; p < positions; p++)
        {
            TKv.Write(x.AsSpan(p * headDim, headDim), rows.AsSpan(p * rowBytes, rowBytes), side.AsSpan(p * sideBytes, sideBytes));
            TKv.Read(ref rows[p * rowBytes], ref side.AsSpan()[(p * sideBytes)..].GetPinnableReference(), headDim, ref back[p * headDim]);
        }
        return (rows, side, back);
    }

    /// <summary>
    /// The kernel over a mixed pair against (1) the float kernel over the read-back values, bit for bit, and (2) the
    /// textbook attention in double over the exact values, within <paramref name="tolerance"/> per output element.
    /// </summary>
    private static void AttendsLikeTheReadBackValues<TKey, TValue>(int group, int tokens, int headDim, int positions, float tolerance)
        where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
    {
        var rng = new Random(group * 100 + tokens + headDim * 7 + positions);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var keys = Random(positions * headDim);
        var values = Random(positions * headDim);
        var queries = Random(tokens * group * headDim);
        var k = Store<TKey>(keys, positions, headDim);
        var v = Store<TValue>(values, positions, headDim);

        int first = positions - tokens, width = group * headDim;
        var expected = new float[tokens * width];
        var actual = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        const float scale = 0.125f;
        CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(k.Back, v.Back, headDim), scale, scratch);
        CausalAttention.Attend<ContiguousKvRows<TKey, TValue>, TKey, TValue>(new QueryBlock(queries, actual, tokens, width, first, group, headDim),
            new ContiguousKvRows<TKey, TValue>(k.Rows, v.Rows, k.Side, v.Side, headDim), scale, scratch);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));

        var reference = new float[headDim];
        float worst = 0;
        for (int t = 0; t < tokens; t++)
            for (int g = 0; g < group; g++)
            {
                int at = t * width + g * headDim;
                ReferenceAttention.Attend(queries.AsSpan(at, headDim), keys, values, first + t + 1, scale, reference);
                for (int i = 0; i < headDim; i++) worst = Math.Max(worst, Math.Abs(reference[i] - actual[at + i]));
            }
        Assert.True(worst <= tolerance, $"{TKey.Name} keys, {TValue.Name} values: max |attention - reference| = {worst} > {tolerance}");
    }

    // Tolerances: values in [-1, 1] read back within half a step of their group's scale (F16 2^-12, Q8_0 1/254,
    // Q4_0 1/16), and an output is a weighted mean of them; key errors move the scores by at most that much times
    // |query| x scale, which the softmax passes on as a relative weight change of about the same size.
    [Theory]
    [InlineData("f16/q8_0", 1, 1, 64, 100, 0.01f)] // decode: both sides in registers
    [InlineData("f16/q8_0", 5, 1, 64, 100, 0.01f)] // prefill: both from tiles
    [InlineData("q8_0/q4_0", 2, 1, 32, 70, 0.08f)]
    [InlineData("q8_0/q4_0", 1, 3, 8, 40, 0.08f)] // head_dim 8: Q4_0 and Q8_0 from tiles, one group per row
    [InlineData("f16/q4_0", 4, 1, 32, 90, 0.08f)]
    [InlineData("q4_0/f16", 4, 1, 32, 90, 0.08f)]
    [InlineData("f32/q8_0", 1, 7, 64, 50, 0.01f)]
    [InlineData("q8_0/f32", 3, 1, 48, 60, 0.01f)] // head_dim 48: Q8_0 keys from a tile, F32 values in place
    [InlineData("f16/f32", 2, 1, 128, 40, 0.001f)] // F16 keys scaled down in registers, F32 values
    [InlineData("f32/f16", 2, 2, 16, 33, 0.001f)]
    [InlineData("q4_0/q8_0", 1, 1, 8, 37, 0.15f)]
    public void MixedRowsAttendExactlyLikeFloatRowsHoldingEachSidesValues(string pair, int group, int tokens, int headDim, int positions, float tolerance)
    {
        Action<int, int, int, int, float> check = pair switch
        {
            "f16/q8_0" => AttendsLikeTheReadBackValues<KvF16, KvQ8>,
            "q8_0/q4_0" => AttendsLikeTheReadBackValues<KvQ8, KvQ4>,
            "f16/q4_0" => AttendsLikeTheReadBackValues<KvF16, KvQ4>,
            "q4_0/f16" => AttendsLikeTheReadBackValues<KvQ4, KvF16>,
            "f32/q8_0" => AttendsLikeTheReadBackValues<KvF32, KvQ8>,
            "q8_0/f32" => AttendsLikeTheReadBackValues<KvQ8, KvF32>,
            "f16/f32" => AttendsLikeTheReadBackValues<KvF16, KvF32>,
            "f32/f16" => AttendsLikeTheReadBackValues<KvF32, KvF16>,
            "q4_0/q8_0" => AttendsLikeTheReadBackValues<KvQ4, KvQ8>,
            _ => throw new ArgumentException(pair),
        };
        check(group, tokens, headDim, positions, tolerance);
    }

    [Theory]
    // Measured 2026-12-05, max |logit(pair) - logit(F32)| over the prompt's last token and one decode step, on the two
    // models: f16/q8_0 0.016 and 0.046, q8_0/q4_0 0.29 and 0.54, q4_0/f16 0.91 (llama-gqa).
    [InlineData("llama-gqa.F32.gguf", KvElementType.F16, KvElementType.Q8_0, 0.2f)]
    [InlineData("llama-gqa.F32.gguf", KvElementType.Q8_0, KvElementType.Q4_0, 1.5f)]
    [InlineData("llama-gqa.F32.gguf", KvElementType.Q4_0, KvElementType.F16, 1.5f)]
    [InlineData("stories260K.gguf", KvElementType.F16, KvElementType.Q8_0, 0.2f)]
    [InlineData("stories260K.gguf", KvElementType.Q8_0, KvElementType.Q4_0, 1.5f)]
    public void PagedEqualsContiguousAndTheLogitsStayNearF32(string model, KvElementType keys, KvElementType values, float tolerance)
    {
        using var llm = LlmModel.Load(model.StartsWith("stories") ? TestPaths.Model(model) : TestPaths.Fixture(model), new ModelLoadOptions { Threads = 2 });
        var f32 = KvTypeLogits.PromptThenStep(llm, KvElementType.F32);
        var pair = KvTypeLogits.PromptThenStep(llm, KvElementFormat.Of(keys, values)); // asserts paged == contiguous
        float max = f32.Zip(pair, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max > 0 && max < tolerance, $"max |logit({keys} keys, {values} values) - logit(F32)| = {max}");
    }

    [Fact]
    public void EachSideStoresWhatItsUniformCacheStores()
    {
        // Layer 0's keys and values come from the embeddings alone, so a pair's layer-0 rows are byte for byte the
        // uniform caches' rows of each side's type.
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"), new ModelLoadOptions { Threads = 2 });
        var pair = new KvCache(model.Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F16, KvElementType.Q8_0));
        var f16 = model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.F16);
        var q8 = model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.Q8_0);
        foreach (var cache in new[] { pair, f16, q8 }) model.Evaluate(KvTypeLogits.Prompt, cache);
        int n = KvTypeLogits.Prompt.Length, hd = model.Config.HeadDim;
        for (int h = 0; h < model.Config.KvHeadCount; h++)
        {
            Assert.Equal(f16.KeyRows(0, h)[..(n * 2 * hd)].ToArray(), pair.KeyRows(0, h)[..(n * 2 * hd)].ToArray());
            Assert.Equal(q8.ValueRows(0, h)[..(n * hd)].ToArray(), pair.ValueRows(0, h)[..(n * hd)].ToArray());
            Assert.Equal(q8.ValueSide(0, h)[..(n * 4)].ToArray(), pair.ValueSide(0, h)[..(n * 4)].ToArray());
            Assert.Equal(0, pair.KeySide(0, h).Length);
        }
    }

    [Fact]
    public void APairTakesEachSidesBytesAndASameTypePairIsTheUniformFormat()
    {
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var c = model.Config; // head_dim 32: one scale per row for Q8_0 and Q4_0
        var format = KvElementFormat.Of(KvElementType.F16, KvElementType.Q4_0);
        long expected = (long)c.LayerCount * c.KvHeadCount * (2 * c.HeadDim + c.HeadDim / 2 + 4);
        Assert.Equal(expected, format.BytesPerToken(c));
        Assert.Equal(expected, KvSizing.BytesPerToken(c, KvElementType.F16, KvElementType.Q4_0));
        Assert.Equal(expected, new KvCache(c, KvCacheMode.Static, 10, format).BytesPerToken);
        Assert.Equal("F16/Q4_0", format.Name);
        Assert.Equal((KvElementType.F16, KvElementType.Q4_0), (format.KeyType!.Value, format.ValueType!.Value));
        Assert.Null(format.Type);
        Assert.Contains("F16", Assert.Throws<InvalidOperationException>(() => format.RowBytes(c.HeadDim)).Message);
        Assert.Same(KvElementFormat.Of(KvElementType.F16), format.Keys);
        Assert.Same(KvElementFormat.Of(KvElementType.Q4_0), format.Values);
        foreach (var t in Enum.GetValues<KvElementType>())
            Assert.Same(KvElementFormat.Of(t), KvElementFormat.Of(t, t));

        using var pool = new KvBlockPool(c, 16, 4, format);
        Assert.Equal(expected * 16, pool.BytesPerBlock);
        Assert.Equal(pool.RowsPerSide * 2 * c.HeadDim, pool.BlockRows(0, value: false).Length);
        Assert.Equal(pool.RowsPerSide * c.HeadDim / 2, pool.BlockRows(0, value: true).Length);
        Assert.Equal(0, pool.BlockSide(0, value: false).Length);
        Assert.Equal(pool.RowsPerSide * 4, pool.BlockSide(0, value: true).Length);
    }
}
