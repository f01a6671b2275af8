using System.Runtime.InteropServices;
using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Engine;
using KvSharp.Models;
using KvSharp.Reference;
using KvSharp.Tensors;
using KvSharp.Tests.Cli;

namespace KvSharp.Tests.Cache;

/// <summary>
/// KIVI-style kivi4 / kivi2: keys per channel and values per token, 32 rows at a time, the newest rows exact until
/// their group fills. Every element reads back within half a step of its own set (a key channel over its group, or a
/// value row's channels), whatever an outlier channel does; NaN and ±Inf read back as NaN for their whole set; the
/// attention reads exactly the values the cache reads back; and a context shift, which moves rows, refuses the type (paged KIVI: PagedKiviTests). Keys are
/// quantized before RoPE where a cache gives the model's angles, and read back rotated.
/// </summary>
public class KiviKvCacheTests
{
    private const int Group = KvKivi.GroupRows;
    private static readonly int KeyExact = KiviPerChannel.ExactRows;

    /// <summary>One head's planes of a KIVI type, written row by row; reads back every row as floats.</summary>
    private sealed class Planes<TKv> where TKv : struct, IKvElement<TKv>
    {
        public readonly byte[] Rows, Side;
        private readonly int _headDim;
        private float[]? _pending;
        private readonly RotaryTable? _rotation;

        public Planes(int capacity, int headDim, RotaryTable? rotation = null)
        {
            _headDim = headDim;
            _rotation = rotation;
            Rows = new byte[capacity * TKv.RowBytes(headDim)];
            Side = new byte[TKv.SideHeaderBytes(headDim) + capacity * TKv.SideBytes(headDim)];
        }

        /// <summary>Rows [from, to) of <paramref name="x"/> written as a cache writes a step: room first, rows in any order, then settled.</summary>
        public void Write(float[] x, int to, int from = 0)
        {
            TKv.Prepare(Side, to, _headDim, ref _pending, _rotation);
            for (int r = to - 1; r >= from; r--) TKv.WriteRow(x.AsSpan(r * _headDim, _headDim), Rows, Side, r, _headDim);
            TKv.Settle(Rows, Side, from, to, _headDim);
        }

        public float[] Read(int rows)
        {
            var back = new float[rows * _headDim];
            var planes = new KvPlanes(ref Rows[0], ref Side[0]);
            for (int r = 0; r < rows; r++) TKv.ReadRow(planes, r, _headDim, ref back[r * _headDim]);
            return back;
        }
    }

    /// <summary>
    /// The error bound of a set with least and greatest elements lo and hi at <paramref name="levels"/> steps: half a
    /// step of the range widened by min's rounding down to binary16 (one binary16 ulp, 2^-10 x |lo|, or 2^-24 for
    /// subnormals), the step rounded up to binary16 (a factor 1 + 2^-10), plus float rounding.
    /// </summary>
    private static double Bound(double lo, double hi, int levels) =>
        0.5 * ((hi - lo + Math.Abs(lo) * Math.Pow(2, -10) + Math.Pow(2, -24)) / levels * (1 + Math.Pow(2, -9)) + Math.Pow(2, -24))
        + 1e-6 * Math.Max(Math.Abs(lo), Math.Abs(hi));

    /// <summary>Rows with two adversarial channels: channel 3 an outlier 1,000x the others, channel 5 a large offset with a small spread.</summary>
    private static float[] AdversarialRows(int rows, int headDim, int seed)
    {
        var rng = new Random(seed);
        var x = new float[rows * headDim];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < headDim; c++)
                x[r * headDim + c] = c == 3 ? (float)(rng.NextDouble() * 2000 - 1000) : c == 5 ? 100 + (float)rng.NextDouble() * 0.01f : (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    [Theory]
    [InlineData(4, 8)]
    [InlineData(4, 64)]
    [InlineData(2, 8)]
    [InlineData(2, 32)]
    public void KeysPerChannelStayWithinHalfAStepOfTheirOwnChannelAndPendingRowsAreExact(int bits, int headDim)
    {
        int rows = Group * 2 + KeyExact + 5, levels = (1 << bits) - 1;
        var x = AdversarialRows(rows, headDim, headDim + bits);
        var back = bits == 4 ? RoundTrip<KvKivi<KiviBits4, KiviPerChannel>>(x, rows, headDim) : RoundTrip<KvKivi<KiviBits2, KiviPerChannel>>(x, rows, headDim);
        for (int g = 0; g < 2; g++)
            for (int c = 0; c < headDim; c++)
            {
                var set = Enumerable.Range(g * Group, Group).Select(r => (double)x[r * headDim + c]).ToArray();
                double bound = Bound(set.Min(), set.Max(), levels);
                for (int r = g * Group; r < (g + 1) * Group; r++)
                    Assert.True(Math.Abs(x[r * headDim + c] - back[r * headDim + c]) <= bound,
                        $"row {r} channel {c}: {x[r * headDim + c]} read back as {back[r * headDim + c]}, bound {bound}");
            }
        // The outlier channel sets only its own scale: the unit channels keep their small error.
        double unitError = Enumerable.Range(0, Group * headDim).Where(i => i % headDim is not (3 or 5)).Max(i => Math.Abs(x[i] - back[i]));
        Assert.True(unitError <= Bound(-1, 1, levels), $"unit channels' error {unitError}");
        // The group being filled and the ExactRows after the quantized groups are pending: exact.
        Assert.Equal(x[(Group * 2 * headDim)..], back[(Group * 2 * headDim)..]);
    }

    [Theory]
    [InlineData(4, 8)]
    [InlineData(4, 64)]
    [InlineData(2, 8)]
    public void ValuesPerTokenStayWithinHalfAStepOfTheirOwnRowsGroup(int bits, int headDim)
    {
        int rows = Group + 3, levels = (1 << bits) - 1, group = KiviPerToken.ChannelGroup(headDim);
        var x = AdversarialRows(rows, headDim, 7 * headDim + bits);
        var back = bits == 4 ? RoundTrip<KvKivi<KiviBits4, KiviPerToken>>(x, rows, headDim) : RoundTrip<KvKivi<KiviBits2, KiviPerToken>>(x, rows, headDim);
        for (int r = 0; r < Group; r++)
            for (int g = 0; g < headDim / group; g++)
            {
                var set = x.AsSpan(r * headDim + g * group, group).ToArray();
                double bound = Bound(set.Min(), set.Max(), levels);
                for (int c = g * group; c < (g + 1) * group; c++)
                    Assert.True(Math.Abs(x[r * headDim + c] - back[r * headDim + c]) <= bound, $"row {r} channel {c}: bound {bound}");
            }
        Assert.Equal(x[(Group * headDim)..], back[(Group * headDim)..]);
    }

    private static float[] RoundTrip<TKv>(float[] x, int rows, int headDim) where TKv : struct, IKvElement<TKv>
    {
        var planes = new Planes<TKv>(rows, headDim);
        planes.Write(x, rows);
        return planes.Read(rows);
    }

    [Fact]
    public void NaNAndInfinityReadBackAsNaNForTheirWholeSetOnly()
    {
        const int headDim = 64;
        var keys = AdversarialRows(Group + KeyExact, headDim, 1);
        keys[4 * headDim + 2] = float.NaN;
        keys[9 * headDim + 7] = float.PositiveInfinity;
        keys[11 * headDim + 8] = 1e6f; // past binary16's range
        var back = RoundTrip<KvKivi<KiviBits4, KiviPerChannel>>(keys, Group + KeyExact, headDim);
        for (int r = 0; r < Group; r++)
            for (int c = 0; c < headDim; c++)
                Assert.Equal(c is 2 or 7 or 8, float.IsNaN(back[r * headDim + c]));

        var values = AdversarialRows(Group, headDim, 2);
        values[5 * headDim + 40] = float.NegativeInfinity; // row 5's second group of 32 channels
        values[6 * headDim + 1] = float.NaN;
        back = RoundTrip<KvKivi<KiviBits2, KiviPerToken>>(values, Group, headDim);
        for (int r = 0; r < Group; r++)
            for (int c = 0; c < headDim; c++)
                Assert.Equal((r == 5 && c >= 32) || (r == 6 && c < 32), float.IsNaN(back[r * headDim + c]));
    }

    /// <summary>
    /// Keys before RoPE: steady channels (a fixed value per channel plus a little noise), rotated at their positions by
    /// the model's RoPE as the forward pass rotates them, read back within the sum of their pair's two half steps
    /// (the error of a pair turns with it) of the exact rotated key. Quantized after RoPE, per channel along positions,
    /// the fastest pair (~1 radian per token at theta 10000) swings over its whole range in every group and misses
    /// that bound many times over. Both RoPE layouts: stories260K pairs neighbours, qwen2 (NeoX) halves.
    /// </summary>
    [Theory]
    [InlineData("stories260K")]
    [InlineData("qwen2-bias")]
    public void KeysQuantizedBeforeRopeReadBackNearTheExactRotatedKeyWhereChannelsTurnFast(string name)
    {
        using var model = LlmModel.Load(name == "stories260K" ? TestPaths.Model("stories260K.gguf") : TestPaths.Fixture("qwen2-bias.F32.gguf"));
        var config = model.Config;
        Assert.Equal(name == "stories260K" ? RopeStyle.Normal : RopeStyle.NeoX, config.RopeStyle);
        int headDim = config.HeadDim, rows = 3 * Group + KeyExact, half = model.Rope.Dims / 2, levels = 15;
        var rng = new Random(11);
        var steady = Enumerable.Range(0, headDim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var before = new float[rows * headDim];
        var rotated = new float[rows * headDim];
        var (cos, sin) = (new float[half], new float[half]);
        for (int p = 0; p < rows; p++)
        {
            for (int c = 0; c < headDim; c++) before[p * headDim + c] = steady[c] + (float)(rng.NextDouble() - 0.5) * 0.1f;
            before.AsSpan(p * headDim, headDim).CopyTo(rotated.AsSpan(p * headDim));
            model.Rope.Angles(p, cos, sin);
            model.Rope.Apply(rotated.AsSpan(p * headDim, headDim), headDim, cos, sin);
        }
        var table = new RotaryTable(model.Rope.Dims, config.RopeStyle == RopeStyle.NeoX, model.Rope.Angles);
        var preRope = new Planes<KvKivi<KiviBits4, KiviPerChannel>>(rows, headDim, table);
        preRope.Write(rotated, rows);
        var postRope = new Planes<KvKivi<KiviBits4, KiviPerChannel>>(rows, headDim);
        postRope.Write(rotated, rows);
        var (back, backPost) = (preRope.Read(rows), postRope.Read(rows));

        // The partner of channel c in its RoPE pair (itself past the rotated dimensions).
        int Partner(int c) => c >= 2 * half ? c : config.RopeStyle == RopeStyle.Normal ? c ^ 1 : c < half ? c + half : c - half;
        double worstPost = 0;
        for (int g = 0; g < 3; g++)
        {
            var bound = Enumerable.Range(0, headDim).Select(c =>
            {
                var set = Enumerable.Range(g * Group, Group).Select(r => (double)before[r * headDim + c]).ToArray();
                return Bound(set.Min(), set.Max(), levels);
            }).ToArray();
            for (int r = g * Group; r < (g + 1) * Group; r++)
                for (int c = 0; c < headDim; c++)
                {
                    int i = r * headDim + c;
                    double limit = bound[c] + (Partner(c) == c ? 0 : bound[Partner(c)]) + 1e-5;
                    Assert.True(Math.Abs(back[i] - rotated[i]) <= limit, $"position {r} channel {c}: {back[i]} vs {rotated[i]}, bound {limit}");
                    worstPost = Math.Max(worstPost, Math.Abs(backPost[i] - rotated[i]) / limit);
                }
        }
        Assert.True(worstPost > 5, $"post-RoPE per-channel keys stayed within {worstPost:F2} x the pre-RoPE bound");
        // The exact rows are the rotated keys as written, bit for bit.
        Assert.Equal(rotated[(3 * Group * headDim)..], back[(3 * Group * headDim)..]);
    }

    /// <summary>A RoPE of <paramref name="headDim"/> rotating <paramref name="dims"/> dimensions, neighbour pairs or NeoX halves.</summary>
    private static RotaryEmbedding Rope(int headDim, int dims, bool neox) => new(new ModelConfig
    {
        Architecture = neox ? "qwen2" : "llama",
        EmbeddingDim = 2 * headDim, LayerCount = 1, HeadCount = 2, KvHeadCount = 2, HeadDim = headDim, FeedForwardDim = 16,
        VocabSize = 16, TrainedContextLength = 4096, RmsNormEps = 1e-5f, RopeTheta = 10_000f,
        RopeStyle = neox ? RopeStyle.NeoX : RopeStyle.Normal, RopeDimensions = dims, RopeFrequencyScale = 1f,
    }, null);

    /// <summary>The rotation at read is the model's: RotaryTable.Rotate (vectorised where it can be) equals RotaryEmbedding.Apply bit for bit.</summary>
    [Theory]
    [InlineData(8, 8, false)]
    [InlineData(64, 64, false)]
    [InlineData(64, 64, true)]
    [InlineData(64, 40, false)]
    [InlineData(64, 40, true)]
    [InlineData(12, 12, true)]
    public unsafe void RotaryTableRotatesAsTheModelsRopeBitForBit(int headDim, int dims, bool neox)
    {
        var rope = Rope(headDim, dims, neox);
        var table = new RotaryTable(dims, neox, rope.Angles);
        table.Cover(3000);
        var rng = new Random(headDim + dims);
        var (cos, sin) = (new float[dims / 2], new float[dims / 2]);
        foreach (int p in new[] { 0, 1, 2, 31, 500, 2999 })
        {
            var expected = Enumerable.Range(0, headDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            var actual = expected.ToArray();
            rope.Angles(p, cos, sin);
            rope.Apply(expected, headDim, cos, sin);
            fixed (float* angles = &MemoryMarshal.GetArrayDataReference(AnglesOf(table, p, dims))) RotaryTable.Rotate(ref actual[0], angles, dims, neox);
            Assert.Equal(expected, actual);
        }
    }

    /// <summary>Position p's cos and sin as the table keeps them.</summary>
    private static float[] AnglesOf(RotaryTable table, int p, int dims)
    {
        var angles = new float[dims];
        unsafe { new ReadOnlySpan<float>((float*)table.Address + (nint)p * dims, dims).CopyTo(angles); }
        return angles;
    }

    /// <summary>
    /// The attention kernel's tile reader (runs of a group at once, codes eight at a time) gives the floats the one-row
    /// reader gives, bit for bit: runs inside a group, across group ends and into the pending rows, and rows out of order.
    /// </summary>
    [Theory]
    [InlineData(4, 8, false)]
    [InlineData(4, 64, false)]
    [InlineData(4, 64, true)]
    [InlineData(2, 64, true)]
    [InlineData(2, 8, false)]
    [InlineData(4, 12, true)]
    public void TileReadsEqualOneRowReadsBitForBit(int bits, int headDim, bool neox)
    {
        var rotation = new RotaryTable(headDim, neox, Rope(headDim, headDim, neox).Angles);
        if (bits == 4)
        {
            TileEqualsRows<KvKivi<KiviBits4, KiviPerChannel>>(headDim, rotation);
            TileEqualsRows<KvKivi<KiviBits4, KiviPerToken>>(headDim, null);
        }
        else
        {
            TileEqualsRows<KvKivi<KiviBits2, KiviPerChannel>>(headDim, rotation);
            TileEqualsRows<KvKivi<KiviBits2, KiviPerToken>>(headDim, null);
        }
    }

    private static void TileEqualsRows<TKv>(int headDim, RotaryTable? rotation) where TKv : struct, IKvElement<TKv>
    {
        int rows = 3 * Group + KeyExact + 7;
        var planes = new Planes<TKv>(rows, headDim, rotation);
        planes.Write(AdversarialRows(rows, headDim, headDim), rows);
        var one = planes.Read(rows);
        var side = new KvPlanes(ref planes.Rows[0], ref planes.Side[0]);
        nint[][] tiles =
        [
            [.. Enumerable.Range(0, Group).Select(r => (nint)r)],
            [.. Enumerable.Range(20, 32).Select(r => (nint)r)],
            [.. Enumerable.Range(rows - 40, 40).Select(r => (nint)r)],
            [70, 3, 4, 5, 33, 34, 95, 96, 2, (nint)(rows - 1)],
        ];
        foreach (var tile in tiles)
        {
            var widened = new float[tile.Length * headDim];
            TKv.ReadRows(side, tile, headDim, ref widened[0]);
            for (int j = 0; j < tile.Length; j++)
                Assert.Equal(one.AsSpan((int)tile[j] * headDim, headDim).ToArray(), widened.AsSpan(j * headDim, headDim).ToArray());
        }
    }

    [Fact]
    public void ATruncationIntoAQuantizedGroupKeepsTheRowsBeforeItAndZeroesTheRest()
    {
        const int headDim = 8;
        int rows = Group + KeyExact + 10;
        var x = AdversarialRows(rows, headDim, 3);
        var planes = new Planes<KvKivi<KiviBits4, KiviPerChannel>>(rows, headDim);
        // Two steps: the last one's query reads group 0 quantized, so its exact rows are let go.
        planes.Write(x, rows - 1);
        planes.Write(x, rows, from: rows - 1);
        var before = planes.Read(rows);
        KvKivi<KiviBits4, KiviPerChannel>.ClearRows(planes.Rows, planes.Side, 20, rows, headDim);
        Assert.Equal(before[..(20 * headDim)], planes.Read(20));
        Assert.All(planes.Rows[(20 * KvKivi<KiviBits4, KiviPerChannel>.RowBytes(headDim))..], b => Assert.Equal(0, b));
        // The group refills from row 20 with new rows and is quantized again; the kept rows stay within a half step
        // of the refilled group's channel of what they read before.
        var fresh = AdversarialRows(rows, headDim, 4);
        planes.Write(fresh, rows, from: 20);
        var after = planes.Read(rows);
        Assert.Equal(fresh[(Group * headDim)..(rows * headDim)], after[(Group * headDim)..]);
        for (int c = 0; c < headDim; c++)
        {
            var set = Enumerable.Range(0, Group).Select(r => (double)(r < 20 ? before[r * headDim + c] : fresh[r * headDim + c])).ToArray();
            for (int r = 0; r < 20; r++)
                Assert.True(Math.Abs(after[r * headDim + c] - before[r * headDim + c]) <= Bound(set.Min(), set.Max(), 15), $"row {r} channel {c}");
        }
        Assert.Throws<InvalidOperationException>(() =>
            KvKivi<KiviBits4, KiviPerChannel>.WriteRow(fresh.AsSpan(0, headDim), planes.Rows, planes.Side, 3, headDim)); // already quantized
    }

    [Theory]
    [InlineData(KvElementType.Kivi4, 1, 140, 0.15f)]
    [InlineData(KvElementType.Kivi4, 7, 120, 0.15f)]
    [InlineData(KvElementType.Kivi2, 1, 110, 0.6f)]
    public void AttentionReadsExactlyTheCachesValuesAndStaysNearTheReference(KvElementType type, int tokens, int positions, float tolerance)
    {
        // Keys with an outlier channel, values in [-1, 1]; llama-gqa's shape (2 KV heads of 32).
        using var model = LlmModel.Load(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var config = model.Config;
        int headDim = config.HeadDim, heads = config.KvHeadCount, group = config.HeadCount / heads, width = group * headDim;
        var cache = new KvCache(config, KvCacheMode.Contiguous, 160, KvElementFormat.Of(type));
        IKvStore store = cache;
        var rng = new Random(positions);
        var keys = AdversarialRows(positions * heads, headDim, positions);
        for (int i = 0; i < keys.Length; i++) keys[i] /= i % headDim == 3 ? 100 : 1; // outlier channel at 10x
        var values = Enumerable.Range(0, keys.Length).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        store.Reserve(positions);
        for (int l = 0; l < config.LayerCount; l++)
            for (int p = 0; p < positions; p++)
                store.Write(l, p, keys.AsSpan(p * heads * headDim, heads * headDim), values.AsSpan(p * heads * headDim, heads * headDim));
        cache.Commit(positions);

        var queries = Enumerable.Range(0, tokens * width).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var scratch = new float[CausalAttention.ScratchLength(tokens * group)];
        int first = positions - tokens;
        for (int h = 0; h < heads; h++)
        {
            var actual = new float[tokens * width];
            store.Attend(1, h, new QueryBlock(queries, actual, tokens, width, first, group, headDim), 0.125f, scratch);
            var (k, v) = (new float[positions * headDim], new float[positions * headDim]);
            for (int p = 0; p < positions; p++)
            {
                cache.ReadKey(1, h, p, k.AsSpan(p * headDim, headDim));
                cache.ReadValue(1, h, p, v.AsSpan(p * headDim, headDim));
            }
            var expected = new float[tokens * width];
            CausalAttention.Attend(new QueryBlock(queries, expected, tokens, width, first, group, headDim), ContiguousKvRows.Of(k, v, headDim), 0.125f, scratch);
            Assert.Equal(expected, actual);

            var exactKeys = Enumerable.Range(0, positions).SelectMany(p => keys.AsSpan((p * heads + h) * headDim, headDim).ToArray()).ToArray();
            var exactValues = Enumerable.Range(0, positions).SelectMany(p => values.AsSpan((p * heads + h) * headDim, headDim).ToArray()).ToArray();
            var reference = new float[headDim];
            for (int t = 0; t < tokens; t++)
                for (int g = 0; g < group; g++)
                {
                    int at = t * width + g * headDim;
                    ReferenceAttention.Attend(queries.AsSpan(at, headDim), exactKeys, exactValues, first + t + 1, 0.125, reference);
                    for (int i = 0; i < headDim; i++)
                        Assert.True(Math.Abs(reference[i] - actual[at + i]) <= tolerance, $"head {h} token {t} query {g} element {i}: {actual[at + i]} vs {reference[i]}");
                }
        }
    }

    [Fact]
    public void ModelLogitsStayNearF32AndKivi4TakesAThirdOfF16sBytes()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.",
            addSpecial: true, parseSpecial: false);
        var f32 = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64), allLogits: true);
        var kivi4 = model.Evaluate(prompt, new KvCache(model.Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.Kivi4)), allLogits: true);
        var q4 = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.Q4_0), allLogits: true);
        double Mean(float[] a) => f32.Zip(a, (x, y) => (double)Math.Abs(x - y)).Average();
        // Measured 2026-12-05 over this prompt's 36 positions: mean |logit(kivi4) - logit(F32)| 0.24, Q4_0's 1.39.
        Assert.True(Mean(kivi4) > 0 && Mean(kivi4) < 0.4, $"mean |logit(kivi4) - logit(F32)| = {Mean(kivi4)}");
        Assert.True(Mean(kivi4) < Mean(q4) / 4, $"kivi4 {Mean(kivi4)}, q4_0 {Mean(q4)}");
        // head_dim 8: keys 4 bytes of codes + 1 byte share of 32 bytes of channel parameters per 32 rows, values
        // 4 bytes + one (min, scale) pair; 5 layers x 4 heads.
        Assert.Equal(5L * 4 * (4 + 1 + 4 + 4), KvSizing.BytesPerToken(model.Config, KvElementType.Kivi4));
        Assert.Equal(5L * 4 * (2 + 1 + 2 + 4), KvSizing.BytesPerToken(model.Config, KvElementType.Kivi2));
        Assert.Equal(5L * 4 * 8 * 4 * (96 + 32), KvSizing.ExactBytesPerSequence(model.Config, KvElementType.Kivi4, KvElementType.Kivi2));
        Assert.Equal(5L * 4 * 8 * 4 * 32, KvSizing.ExactBytesPerSequence(model.Config, KvElementType.Q8_0, KvElementType.Kivi2));
        Assert.Equal(0, KvSizing.ExactBytesPerSequence(model.Config, KvElementType.F16, KvElementType.Q4_0));
        var cache = new KvCache(model.Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.Kivi4));
        Assert.Equal(260L * 64 + 5 * 4 * 8 * 4 * 128, cache.AllocatedBytes);
        Assert.Equal(0, cache.UsedBytes);
        Assert.Equal("Kivi4", KvElementFormat.Of(KvElementType.Kivi4).Name);
        Assert.Equal(KvElementType.Kivi4, KvElementFormat.Of(KvElementType.Kivi4).Type);
    }

    /// <summary>
    /// kivi4 keys and values on stories260K, teacher-forced over generated text against the exact cache: keys before
    /// RoPE with a residual of exact rows meet issue 15's quality target. Measured 2026-12-05 (this text): mean KL
    /// 0.0015, top-1 98.4%; keys quantized after RoPE with only the filling group exact gave KL 0.034, top-1 92.7%.
    /// </summary>
    [Fact]
    public void Kivi4OnStories260KMeetsTheQualityTarget()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var text = KvSharp.Evaluation.EvalText.Generate(model, 512, seed: 5);
        var run = Assert.Single(KvSharp.Evaluation.KvEvaluator.Run(model, text, [new KvSharp.Evaluation.EvalSetup(KvElementType.Kivi4)],
            new KvSharp.Evaluation.EvalOptions { ContextLength = 512, ChunkTokens = 64, DecodeTokens = 0 }).Runs);
        Assert.True(run.MeanKl <= 0.01, $"mean KL {run.MeanKl}");
        Assert.True(run.Top1Agreement >= 0.97, $"top-1 agreement {run.Top1Agreement}");
    }

    [Fact]
    public void ContextShiftRefusesKivi()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var kivi = KvElementFormat.Of(KvElementType.F16, KvElementType.Kivi2);
        Assert.Contains("ContextOverflow.Shift", Assert.Throws<ArgumentException>(() =>
            model.CreateSession(new SessionOptions { KeyElementType = KvElementType.Kivi4, ContextOverflow = ContextOverflow.Shift })).Message);
        var cache = new KvCache(model.Config, KvCacheMode.Contiguous, 64, kivi);
        Assert.Throws<NotSupportedException>(() => cache.Shift(1, 1, model.Rope));
        var unwritten = new float[model.Config.HeadDim];
        cache.ReadValue(0, 0, 3, unwritten); // before anything is written: zeros, not a read through a null buffer
        Assert.All(unwritten, x => Assert.Equal(0, x));
        var run = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "hi", "--kv-type", "kivi4", "--context-overflow", "shift");
        CliOptionErrorTests.AssertOneLineError(run, "ContextOverflow.Shift moves cached rows, which Kivi4 quantizes in groups along positions");
    }

    [Fact]
    public void RunGeneratesWithKiviAndSaysItsBytes()
    {
        var r = CliRunner.Run("run", "-m", TestPaths.Model("stories260K.gguf"), "-p", "Once upon a time", "-n", "40", "--threads", "2", "--kv-type", "kivi4");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // Plus the exact rows, a constant: 5 layers x 4 heads x 8 floats x (96 key rows + 32 value rows).
        Assert.Contains("KV cache (Kivi4): 260 bytes/token + 81920 bytes of exact rows", r.Stderr);
        Assert.True(r.Stdout.Length > 40, r.Stdout);
    }
}
