using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Tensors;
using KvSharp.Tests.Cli;
using System.Runtime.InteropServices;

namespace KvSharp.Tests.Cache;

/// <summary>
/// The Q8_0 KV cache: each group of a row stored as 8-bit integers and a float scale (llama.cpp's q8_0 quantizer),
/// read back as q x d. Attention over it computes exactly what a float cache holding q x d computes; the model's
/// logits stay close to the F32 cache's; paged, contiguous, batched and alone agree bit for bit.
/// </summary>
public class Q8KvCacheTests
{
    /// <summary>The quantizer as llama.cpp's q8_0 defines it, one element at a time.</summary>
    private static (sbyte[] Q, float[] D) Reference(float[] row, int group)
    {
        var q = new sbyte[row.Length];
        var d = new float[row.Length / group];
        for (int g = 0; g < d.Length; g++)
        {
            float amax = 0;
            for (int i = g * group; i < (g + 1) * group; i++) amax = Math.Max(amax, Math.Abs(row[i]));
            float scale = amax / 127f, inverse = scale != 0 ? 1f / scale : 0f;
            d[g] = scale;
            for (int i = g * group; i < (g + 1) * group; i++) q[i] = (sbyte)MathF.Round(row[i] * inverse, MidpointRounding.ToEven);
        }
        return (q, d);
    }

    [Theory]
    [InlineData(64, 32)]
    [InlineData(128, 32)]
    [InlineData(20, 20)]
    [InlineData(48, 48)]
    [InlineData(8, 8)]
    public void QuantizeMatchesTheReferenceAndRoundTripsWithinHalfAStep(int headDim, int group)
    {
        Assert.Equal(group, KvQ8.GroupSize(headDim));
        var rng = new Random(headDim);
        for (int trial = 0; trial < 200; trial++)
        {
            double range = Math.Pow(10, rng.Next(-6, 4));
            var row = Enumerable.Range(0, headDim).Select(_ => (float)((rng.NextDouble() * 2 - 1) * range)).ToArray();
            if (trial % 7 == 0) Array.Clear(row, 0, Math.Min(group, headDim)); // an all-zero group: d = 0, q = 0
            if (trial % 5 == 0) row[rng.Next(headDim)] = (float)(range * (rng.Next(2) * 2 - 1)); // exactly the max
            var q = new sbyte[headDim];
            var d = new float[headDim / group];
            KvQ8.Quantize(row, q, d, group);
            var (rq, rd) = Reference(row, group);
            Assert.Equal(rq, q);
            Assert.Equal(rd, d);

            var back = new float[headDim];
            KvQ8.Dequantize(q, d, group, back);
            for (int i = 0; i < headDim; i++)
            {
                float step = d[i / group];
                Assert.Equal(q[i] * step, back[i]);
                // Half a quantization step, plus the float roundings of x / d and q x d.
                Assert.True(Math.Abs(back[i] - row[i]) <= step * 0.5f * (1 + 1e-5f) + Math.Abs(row[i]) * 1e-6f,
                    $"element {i}: {row[i]} came back as {back[i]} (step {step})");
            }
        }
    }

    /// <summary>
    /// A group whose largest magnitude is below ~3.7e-37 has a scale whose reciprocal overflows to infinity: its codes
    /// still keep their signs and read back within half a step (plus the subnormal grid's rounding).
    /// </summary>
    [Theory]
    [InlineData(1e-38f)]
    [InlineData(3e-39f)]
    [InlineData(2e-37f)]
    public void AGroupOfTinyValuesKeepsItsSignsAndRoundTrips(float largest)
    {
        var row = Enumerable.Range(0, 32).Select(i => largest * ((i % 2 == 0 ? 1 : -1) * (i + 1) / 32f)).ToArray();
        var q = new sbyte[32];
        var d = new float[1];
        KvQ8.Quantize(row, q, d, 32);
        var back = new float[32];
        KvQ8.Dequantize(q, d, 32, back);
        for (int i = 0; i < 32; i++)
        {
            Assert.InRange((int)q[i], -127, 127);
            Assert.Equal(Math.Sign(row[i]), Math.Sign(back[i]));
            Assert.True(Math.Abs(back[i] - row[i]) <= d[0] * 0.5f + 1e-43f, $"element {i}: {row[i]} came back as {back[i]} (step {d[0]})");
        }
    }

    [Fact]
    public void AGroupHoldingAnInfinityOrNaNReadsBackAsNaNAndLeavesTheOthers()
    {
        var row = Enumerable.Range(0, 64).Select(i => i / 64f).ToArray();
        row[5] = float.PositiveInfinity;
        row[40] = float.NaN;
        var q = new sbyte[64];
        var d = new float[2];
        KvQ8.Quantize(row, q, d, 32);
        var back = new float[64];
        KvQ8.Dequantize(q, d, 32, back);
        Assert.All(back[..32], x => Assert.True(float.IsNaN(x)));
        Assert.All(back[32..], x => Assert.True(float.IsNaN(x)));
        row[40] = 0.5f;
        KvQ8.Quantize(row, q, d, 32);
        KvQ8.Dequantize(q, d, 32, back);
        Assert.All(back[32..], x => Assert.True(float.IsFinite(x)));
    }

    [Theory]
    // Up to four queries in groups of 32 read the integers in registers (odd keys, 8-column tails at 96, one group
    // per row at 32); more queries, or head_dims that are not a multiple of 32, through a dequantized tile.
    [InlineData(1, 1, 64, 96)]
    [InlineData(4, 1, 64, 200)]
    [InlineData(3, 1, 96, 77)]
    [InlineData(2, 1, 32, 50)]
    [InlineData(2, 5, 32, 96)]
    [InlineData(1, 61, 128, 96)]
    [InlineData(1, 1, 20, 37)]
    [InlineData(3, 2, 48, 101)]
    public void Q8RowsAttendExactlyLikeFloatRowsHoldingTheDequantizedValues(int group, int tokens, int headDim, int positions)
    {
        var rng = new Random(group * 100 + tokens + headDim * 7 + positions);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        int scaleGroup = KvQ8.GroupSize(headDim), scales = positions * headDim / scaleGroup;
        var keys = Random(positions * headDim);
        var values = Random(positions * headDim);
        var queries = Random(tokens * group * headDim);
        var (qk, dk, qv, dv) = (new sbyte[keys.Length], new float[scales], new sbyte[values.Length], new float[scales]);
        KvQ8.Quantize(keys, qk, dk, scaleGroup);
        KvQ8.Quantize(values, qv, dv, scaleGroup);
        var (fk, fv) = (new float[keys.Length], new float[values.Length]);
        KvQ8.Dequantize(qk, dk, scaleGroup, fk);
        KvQ8.Dequantize(qv, dv, scaleGroup, fv);

        int first = positions - tokens, width = group * headDim;
        var expected = new float[tokens * width];
        var actual = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(fk, fv, headDim), 0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvQ8, KvQ8>, KvQ8>(new QueryBlock(queries, actual, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(qk, qv, dk, dv, headDim), 0.125f, scratch);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2-bias")]
    public void LogitsStayCloseToTheF32CachesAndPagedEqualsContiguous(string fixture)
    {
        using var model = LlmModel.Load(TestPaths.Fixture(fixture + ".F32.gguf"), new ModelLoadOptions { Threads = 2 });
        var f32 = KvTypeLogits.PromptThenStep(model, KvElementType.F32);
        var q8 = KvTypeLogits.PromptThenStep(model, KvElementType.Q8_0);
        float max = f32.Zip(q8, (a, b) => Math.Abs(a - b)).Max();
        // q8_0 keys and values (error <= d/2 per element, d = max|x| / 127 of the group) move these random-weight
        // models' logits by a few hundredths: measured 2026-11-22, 0.072 (llama-gqa) and 0.058 (qwen2-bias), against
        // 0.03 allowed for an F16 cache in LlamaCppParityTests.
        Assert.True(max < 0.15f, $"max |logit(Q8_0 cache) - logit(F32 cache)| = {max}");
        Assert.True(max > 0, "a Q8_0 cache that changed nothing would not be quantizing");
    }

    [Fact]
    public void Q8TakesAByteAndAScaleShareAndFitsMoreBlocksInABudget()
    {
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var c = model.Config; // head_dim 32: one scale per row
        var f32 = model.CreateCache(KvCacheMode.Static, 100);
        var q8 = model.CreateCache(KvCacheMode.Static, 100, KvElementType.Q8_0);
        Assert.Equal(2L * c.LayerCount * c.KvHeadCount * (c.HeadDim + 4), q8.BytesPerToken);
        Assert.Equal(q8.BytesPerToken, KvSizing.BytesPerToken(c, KvElementType.Q8_0));
        Assert.Equal(f32.AllocatedBytes * 36 / 128, q8.AllocatedBytes);

        long budget = 40 * 16 * f32.BytesPerToken;
        using var pool32 = KvBlockPool.FromBudget(c, 16, budget);
        using var pool8 = KvBlockPool.FromBudget(c, 16, budget, elementType: KvElementType.Q8_0);
        Assert.Equal(40, pool32.BlockCount);
        Assert.Equal(40 * 128 / 36, pool8.BlockCount);
        Assert.Equal(pool8.BlockCount * pool8.BytesPerBlock, pool8.TotalBytes);
        Assert.Equal(0, pool32.BlockSide(0, value: false).Length);
        Assert.Equal(pool8.RowsPerSide * 4, pool8.BlockSide(0, value: false).Length);
        Assert.Equal(pool8.RowsPerSide * 4, pool8.BlockSide(0, value: true).Length);
    }

    [Fact]
    public void CopyOnWriteCopiesTheScalesWithTheIntegers()
    {
        using var model = LlmModel.Load(TestPaths.Fixture("qwen2-bias.F32.gguf"));
        using var pool = new KvBlockPool(model.Config, 4, 4, elementType: KvElementType.Q8_0);
        var sequence = new PagedKvSequence(pool, 16);
        var logits = new float[model.Config.VocabSize];
        model.CreateForwardPass().Forward([1, 2, 3, 4, 5, 6], sequence, logits, allLogits: false);
        int to = pool.Allocate();
        pool.CopyBlock(0, to);
        foreach (bool value in new[] { false, true })
        {
            Assert.Equal(pool.BlockElements / 2, pool.BlockRows(0, value).Length);
            Assert.Equal(pool.BlockRows(0, value).ToArray(), pool.BlockRows(to, value).ToArray());
            var original = MemoryMarshal.Cast<byte, float>(pool.BlockSide(0, value)).ToArray();
            Assert.Contains(original, d => d != 0);
            Assert.Equal(original, MemoryMarshal.Cast<byte, float>(pool.BlockSide(to, value)).ToArray());
        }
    }

    [Fact]
    public void TruncateAndResetClearTheIntegersAndScales()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var cache = model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.Q8_0);
        var full = model.Evaluate([1, 410, 469, 347, 261, 400], cache);
        int hd = model.Config.HeadDim, perRow = hd / KvQ8.GroupSize(hd);
        cache.Truncate(4);
        Assert.All(cache.KeyRows(0, 0)[(4 * hd)..].ToArray(), q => Assert.Equal(0, q));
        Assert.All(MemoryMarshal.Cast<byte, float>(cache.KeySide(0, 0))[(4 * perRow)..].ToArray(), d => Assert.Equal(0f, d));
        Assert.Contains(MemoryMarshal.Cast<byte, float>(cache.KeySide(0, 0))[..(4 * perRow)].ToArray(), d => d != 0);
        Assert.Equal(full, model.Evaluate([261, 400], cache));
        cache.Reset();
        Assert.All(MemoryMarshal.Cast<byte, float>(cache.ValueSide(model.Config.LayerCount - 1, 0)).ToArray(), d => Assert.Equal(0f, d));
    }

    [Fact]
    public void RunCommandWithAQ8CacheReportsItsBytes()
    {
        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type", "q8_0");
        Assert.Equal(0, r.ExitCode);
        // head_dim 8 is not a multiple of 32, so one scale per row: 2 x 5 layers x 4 heads x (8 + 4) bytes.
        Assert.Contains("KV cache (Q8_0): 480 bytes/token", r.Stderr);
    }
}
