using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Sampling;
using KvSharp.Tensors;
using KvSharp.Tests.Cli;

namespace KvSharp.Tests.Cache;

/// <summary>
/// The Q4_0 KV cache: each group of a row stored as 4-bit integers and a float scale (llama.cpp's q4_0 reference
/// quantizer), read back as (q - 8) x d. Its error stays within half a step of each group's own scale (one step on the
/// clamped side), however large an outlier elsewhere in the row; attention over it computes exactly what a float
/// cache holding the read-back values computes; paged equals contiguous, and the logits stay within a measured
/// distance of the F32 cache's.
/// </summary>
public class Q4KvCacheTests
{
    /// <summary>
    /// quantize_row_q4_0_ref (ggml-quants.c) transcribed, one group at a time: the integers in element order (the
    /// packing into bytes is KvQ4's own) and the scales as floats.
    /// </summary>
    private static (byte[] Q, float[] D) Reference(float[] row, int group)
    {
        var q = new byte[row.Length];
        var d = new float[row.Length / group];
        for (int g = 0; g < d.Length; g++)
        {
            float amax = 0, max = 0;
            for (int j = 0; j < group; j++)
            {
                float v = row[g * group + j];
                if (amax < MathF.Abs(v))
                {
                    amax = MathF.Abs(v);
                    max = v;
                }
            }
            float scale = max / -8, id = scale != 0 ? 1.0f / scale : 0.0f;
            d[g] = scale;
            for (int j = 0; j < group; j++) q[g * group + j] = (byte)Math.Min(15, (int)(sbyte)(row[g * group + j] * id + 8.5f));
        }
        return (q, d);
    }

    private static byte[] Nibbles(byte[] packed, int count) => Enumerable.Range(0, count).Select(i => (byte)((packed[i >> 1] >> (i & 1) * 4) & 15)).ToArray();

    private static (byte[] Packed, float[] Scales) Quantize(float[] row, int group)
    {
        var packed = new byte[KvQ4.RowBytes(row.Length)];
        var scales = new float[row.Length / group];
        KvQ4.Quantize(row, packed, scales, group);
        return (packed, scales);
    }

    private static float[] Dequantize(byte[] packed, float[] scales, int count, int group)
    {
        var back = new float[count];
        KvQ4.Dequantize(packed, scales, count, group, back);
        return back;
    }

    [Theory]
    [InlineData(64, 32)]
    [InlineData(128, 32)]
    [InlineData(8, 8)]
    [InlineData(20, 20)]
    [InlineData(48, 48)]
    [InlineData(7, 7)]
    public void QuantizeMatchesTheReferenceAndDequantizeReadsBackQMinus8TimesD(int headDim, int group)
    {
        Assert.Equal(group, KvQ4.GroupSize(headDim));
        Assert.Equal((headDim + 1) / 2, KvQ4.RowBytes(headDim));
        var rng = new Random(headDim);
        for (int trial = 0; trial < 300; trial++)
        {
            double range = Math.Pow(10, rng.Next(-6, 4));
            var row = Enumerable.Range(0, headDim).Select(_ => (float)((rng.NextDouble() * 2 - 1) * range)).ToArray();
            if (trial % 7 == 0) Array.Clear(row, 0, Math.Min(group, headDim)); // an all-zero group: d = -0, q = 8
            if (trial % 5 == 0) row[rng.Next(headDim)] = (float)(range * (rng.Next(2) * 2 - 1)); // exactly the max
            if (trial % 3 == 0)
            {
                // A tie of magnitude with opposite signs in one group: the first one sets the sign of d.
                int g = rng.Next(headDim / group) * group, i = g + rng.Next(group / 2), j = g + group / 2 + rng.Next(group - group / 2);
                row[i] = (float)range * 2;
                row[j] = -(float)range * 2;
                if (trial % 2 == 0) (row[i], row[j]) = (row[j], row[i]);
            }
            var (packed, d) = Quantize(row, group);
            var (rq, rd) = Reference(row, group);
            Assert.Equal(rq, Nibbles(packed, headDim));
            Assert.Equal(rd.Select(BitConverter.SingleToInt32Bits), d.Select(BitConverter.SingleToInt32Bits));
            var back = Dequantize(packed, d, headDim, group);
            for (int i = 0; i < headDim; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits((rq[i] - 8) * rd[i / group]), BitConverter.SingleToInt32Bits(back[i]));
        }
    }

    /// <summary>
    /// |x - back| &lt;= |d| / 2 for every element, or |d| for one beyond 7.5 steps on the side opposite the group's
    /// largest magnitude (q clamps at 15), plus the float roundings of x / d and (q - 8) x d.
    /// </summary>
    private static void AssertWithinBound(float[] row, float[] back, float[] d, int group)
    {
        for (int i = 0; i < row.Length; i++)
        {
            float step = Math.Abs(d[i / group]);
            bool clamped = d[i / group] != 0 && row[i] / d[i / group] > 7.5f;
            float bound = step * (clamped ? 1f : 0.5f) * (1 + 1e-5f) + Math.Abs(row[i]) * 1e-6f;
            Assert.True(Math.Abs(back[i] - row[i]) <= bound, $"element {i}: {row[i]} came back as {back[i]} (step {step}, bound {bound})");
        }
    }

    [Theory]
    [InlineData(128, 3, 1000f)]
    [InlineData(128, 100, -5000f)]
    [InlineData(64, 31, 1e6f)]
    [InlineData(96, 64, 250f)]
    public void AnOutlierChannelCostsOnlyItsOwnGroup(int headDim, int channel, float outlier)
    {
        // Keys of real models carry a few channels hundreds of times larger than the rest; a scale per group of 32
        // keeps the others at their own precision.
        var rng = new Random(channel);
        int group = KvQ4.GroupSize(headDim);
        for (int trial = 0; trial < 100; trial++)
        {
            var row = Enumerable.Range(0, headDim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            row[channel] = outlier * (float)(0.5 + rng.NextDouble());
            var (packed, d) = Quantize(row, group);
            var back = Dequantize(packed, d, headDim, group);
            AssertWithinBound(row, back, d, group);
            for (int g = 0; g < headDim / group; g++)
                if (g != channel / group) Assert.True(Math.Abs(d[g]) <= 1f / 8, $"group {g}'s step {d[g]} is not its own");
            Assert.Equal(row[channel], back[channel], MathF.Abs(row[channel]) * 1e-6f); // the largest magnitude comes back as -8 x d
        }
    }

    [Fact]
    public void AdversarialRowsStayWithinTheirBound()
    {
        const int headDim = 64, group = 32;
        List<float[]> rows =
        [
            // The clamped side: -m against +m, where q would be 16.
            [.. Enumerable.Range(0, headDim).Select(i => i % 2 == 0 ? 1f : -1f)],
            [.. Enumerable.Range(0, headDim).Select(i => i % 2 == 0 ? -1f : 1f)],
            // Every value exactly half-way between two steps.
            [.. Enumerable.Range(0, headDim).Select(i => i % group == 0 ? -8f : (i % 16) - 7.5f)],
            // Many channels at the largest magnitude with both signs.
            [.. Enumerable.Range(0, headDim).Select(i => (i % 3 - 1) * 4.25f)],
            // A huge range within a group, tiny values in the other.
            [.. Enumerable.Range(0, headDim).Select(i => i < group ? (i == 5 ? 3e38f : 1e-3f * i) : 1e-30f * (i - 40))],
        ];
        foreach (var row in rows)
        {
            var (packed, d) = Quantize(row, group);
            var (rq, rd) = Reference(row, group);
            Assert.Equal(rq, Nibbles(packed, headDim));
            Assert.Equal(rd, d);
            AssertWithinBound(row, Dequantize(packed, d, headDim, group), d, group);
        }

        // Subnormal groups, where 1 / d overflows and the reference is undefined: x / d keeps the bound.
        var tiny = Enumerable.Range(0, headDim).Select(i => 1e-40f * (i - 40)).ToArray();
        var (p, s) = Quantize(tiny, group);
        Assert.All(s, d => Assert.True(float.IsInfinity(1f / d)));
        var back = Dequantize(p, s, headDim, group);
        AssertWithinBound(tiny, back, s, group);
    }

    [Fact]
    public void AGroupHoldingAnInfinityOrNaNReadsBackAsNaNAndLeavesTheOthers()
    {
        var row = Enumerable.Range(0, 96).Select(i => i / 96f).ToArray();
        row[5] = float.PositiveInfinity;
        row[40] = float.NaN;
        row[70] = float.NegativeInfinity;
        var (packed, d) = Quantize(row, 32);
        Assert.Equal(float.PositiveInfinity, d[0]);
        Assert.True(float.IsNaN(d[1]));
        Assert.Equal(float.PositiveInfinity, d[2]);
        Assert.All(Dequantize(packed, d, 96, 32), x => Assert.True(float.IsNaN(x)));
        row[40] = 0.5f;
        (packed, d) = Quantize(row, 32);
        var back = Dequantize(packed, d, 96, 32);
        Assert.All(back[..32], x => Assert.True(float.IsNaN(x)));
        Assert.All(back[32..64], x => Assert.True(float.IsFinite(x)));
        Assert.All(back[64..], x => Assert.True(float.IsNaN(x)));
    }

    [Theory]
    // Up to four queries at head_dims that are multiples of 32 read the nibbles in registers (one group per row at
    // 32; an 8-column tail at 96); more queries, and other head_dims (one group per row), through a dequantized tile.
    [InlineData(1, 1, 64, 96)]
    [InlineData(4, 1, 64, 200)]
    [InlineData(3, 1, 96, 77)]
    [InlineData(2, 1, 32, 50)]
    [InlineData(2, 2, 128, 70)]
    [InlineData(2, 5, 32, 96)]
    [InlineData(1, 61, 128, 96)]
    [InlineData(1, 1, 8, 37)]
    [InlineData(3, 2, 48, 101)]
    [InlineData(1, 3, 20, 40)]
    public void Q4RowsAttendExactlyLikeFloatRowsHoldingTheDequantizedValues(int group, int tokens, int headDim, int positions)
    {
        var rng = new Random(group * 100 + tokens + headDim * 7 + positions);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        int rowBytes = KvQ4.RowBytes(headDim), sideBytes = KvQ4.SideBytes(headDim);
        var keys = Random(positions * headDim);
        var values = Random(positions * headDim);
        for (int p = 0; p < positions; p += 7) keys[p * headDim + p % headDim] *= 40; // outlier channels
        var queries = Random(tokens * group * headDim);
        (byte[] Rows, byte[] Side, float[] Back) Store(float[] x)
        {
            var (rows, side, back) = (new byte[positions * rowBytes], new byte[positions * sideBytes], new float[x.Length]);
            for (int p = 0; p < positions; p++)
            {
                KvQ4.Write(x.AsSpan(p * headDim, headDim), rows.AsSpan(p * rowBytes, rowBytes), side.AsSpan(p * sideBytes, sideBytes));
                KvQ4.Read(ref rows[p * rowBytes], ref side[p * sideBytes], headDim, ref back[p * headDim]);
            }
            return (rows, side, back);
        }
        var k = Store(keys);
        var v = Store(values);

        int first = positions - tokens, width = group * headDim;
        var expected = new float[tokens * width];
        var actual = new float[tokens * width];
        var exact = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim),
            ContiguousKvRows.Of(k.Back, v.Back, headDim), 0.125f, scratch);
        CausalAttention.Attend<ContiguousKvRows<KvQ4, KvQ4>, KvQ4>(new QueryBlock(queries, actual, tokens, width, first, group, headDim),
            new ContiguousKvRows<KvQ4, KvQ4>(k.Rows, v.Rows, k.Side, v.Side, headDim), 0.125f, scratch);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
        CausalAttention.Attend(new QueryBlock(queries, exact, tokens, width, first, group, headDim), ContiguousKvRows.Of(keys, values, headDim), 0.125f, scratch);
        Assert.NotEqual(exact, actual);
    }

    [Theory]
    // Measured 2026-12-05: max |logit(Q4_0) - logit(F32)| over the prompt's last token and one decode step, 0.93
    // (llama-gqa) and 5.3 (qwen2-bias: its key biases put large offsets in rows of 32, so |d| is large).
    [InlineData("llama-gqa", 1.5f)]
    [InlineData("qwen2-bias", 8f)]
    public void LogitsStayNearTheF32CachesAndPagedEqualsContiguous(string fixture, float tolerance)
    {
        using var model = LlmModel.Load(TestPaths.Fixture(fixture + ".F32.gguf"), new ModelLoadOptions { Threads = 2 });
        var f32 = KvTypeLogits.PromptThenStep(model, KvElementType.F32);
        var q4 = KvTypeLogits.PromptThenStep(model, KvElementType.Q4_0);
        var q8 = KvTypeLogits.PromptThenStep(model, KvElementType.Q8_0);
        float max = f32.Zip(q4, (a, b) => Math.Abs(a - b)).Max(), max8 = f32.Zip(q8, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max < tolerance, $"max |logit(Q4_0 cache) - logit(F32 cache)| = {max}");
        Assert.True(max > max8, $"Q4_0 ({max}) should move the logits more than Q8_0 ({max8})");
    }

    [Fact]
    public void OnStories260KTheLogitsStayWithinTheMeasuredDistanceOfF32()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.",
            addSpecial: true, parseSpecial: false);
        var f32 = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64), allLogits: true);
        var q4 = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.Q4_0), allLogits: true);
        float max = f32.Zip(q4, (a, b) => Math.Abs(a - b)).Max();
        double mean = f32.Zip(q4, (a, b) => (double)Math.Abs(a - b)).Average();
        // head_dim 8 is one group of 8 per row: 4 bits against the row's largest element leave the others a few steps
        // of m / 8, and this tiny model's logits move by units (docs/policies.md: mean KL 0.71 over 2,048 tokens).
        // Measured 2026-12-05 over the 36 positions of this prompt: max 11.06, mean 1.39.
        Assert.True(max > 0 && max < 16f, $"max |logit(Q4_0 cache) - logit(F32 cache)| = {max}");
        Assert.True(mean < 2, $"mean |logit(Q4_0 cache) - logit(F32 cache)| = {mean}");
    }

    [Fact]
    public void Q4TakesHalfAByteAndAScaleShare()
    {
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var c = model.Config; // head_dim 32: one scale per row
        var f32 = model.CreateCache(KvCacheMode.Static, 100);
        var q4 = model.CreateCache(KvCacheMode.Static, 100, KvElementType.Q4_0);
        Assert.Equal(2L * c.LayerCount * c.KvHeadCount * (c.HeadDim / 2 + 4), q4.BytesPerToken);
        Assert.Equal(q4.BytesPerToken, KvSizing.BytesPerToken(c, KvElementType.Q4_0));
        Assert.Equal(f32.AllocatedBytes * 20 / 128, q4.AllocatedBytes);
        Assert.Same(KvElementFormat.Of(KvElementType.Q4_0), KvElementFormat.Of<KvQ4>());
        Assert.Equal(KvElementType.Q4_0, q4.ElementType);
        Assert.Equal(KvElementType.Q4_0, KvElementTypes.Parse("Q4"));
    }

    [Fact]
    public void RunAndInspectReportAQ4CachesBytes()
    {
        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Zoo", "-n", "8", "--threads", "2", "--kv-type", "q4_0");
        Assert.Equal(0, r.ExitCode);
        // head_dim 8 is not a multiple of 32, so one scale per row: 2 x 5 layers x 4 heads x (4 + 4) bytes.
        Assert.Contains("KV cache (Q4_0): 320 bytes/token", r.Stderr);
        var inspect = CliRunner.Run("inspect", TestPaths.Model("stories260K.gguf"));
        Assert.Contains("(--kv-type f16: 640, q8_0: 480, q4_0: 320)", inspect.Stdout);
    }
}
