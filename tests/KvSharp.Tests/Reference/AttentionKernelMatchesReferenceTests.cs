using KvSharp.Attention;
using KvSharp.Reference;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Reference;

/// <summary>
/// The tiled online-softmax kernel computes textbook attention: each query against <see cref="ReferenceAttention"/>,
/// for head sizes from 8 to 256, groups of query heads sharing a KV head (GQA), and lengths on both sides of the
/// 32-position tiles, one token at a time (decode) and as a block of consecutive tokens (prefill).
/// The kernel works in float with ggml's vector expf, the reference in double; the tolerance, 3e-6 x (1 + |expected|),
/// is about five times the largest gap we measured (6.3e-7 over 105,000 outputs).
/// </summary>
public class AttentionKernelMatchesReferenceTests
{
    private const double Tolerance = 3e-6;

    public static TheoryData<int, int> Shapes() => new()
    {
        { 8, 1 }, { 8, 8 }, { 20, 3 }, { 32, 4 }, { 48, 2 }, { 64, 1 }, { 64, 4 }, { 64, 8 }, { 128, 1 }, { 128, 2 }, { 256, 4 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void DecodeMatchesTheReference(int headDim, int groupSize)
    {
        const int positions = 200;
        float[] keys = Gaussian(positions * headDim, 1), values = Gaussian(positions * headDim, 2);
        // Queries of std 2 make scores of std ~2 after scaling: a peaked softmax, so the running max matters.
        float[] queries = Gaussian(groupSize * headDim, 3, 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        var scratch = new float[CausalAttention.ScratchLength(groupSize)];
        foreach (int end in new[] { 1, 2, 7, 31, 32, 33, 63, 64, 65, 97, 100, 200 })
        {
            var output = new float[groupSize * headDim];
            CausalAttention.AttendGroup(queries, ContiguousKvRows.Of(keys, values, headDim), headDim, groupSize, end, scale, output, scratch);
            for (int g = 0; g < groupSize; g++)
                AssertMatches(queries.AsSpan(g * headDim, headDim), keys, values, end, scale, output.AsSpan(g * headDim, headDim),
                    $"headDim {headDim} head {g}/{groupSize} end {end}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void PrefillBlockMatchesTheReference(int headDim, int groupSize)
    {
        // Tokens at positions 29..98: each sees its own prefix, the causal mask crossing tiles at 32, 64 and 96.
        const int firstPosition = 29, tokens = 70, end = firstPosition + tokens;
        int width = groupSize * headDim;
        float[] keys = Gaussian(end * headDim, 4), values = Gaussian(end * headDim, 5);
        float[] queries = Gaussian(tokens * width, 6, 2f);
        var output = new float[queries.Length];
        float scale = 1f / MathF.Sqrt(headDim);
        var block = new QueryBlock(queries, output, tokens, width, firstPosition, groupSize, headDim);
        CausalAttention.Attend(block, ContiguousKvRows.Of(keys, values, headDim), scale,
            new float[CausalAttention.ScratchLength(block.Count)]);
        for (int t = 0; t < tokens; t++)
            for (int g = 0; g < groupSize; g++)
            {
                int at = t * width + g * headDim;
                AssertMatches(queries.AsSpan(at, headDim), keys, values, firstPosition + t + 1, scale, output.AsSpan(at, headDim),
                    $"headDim {headDim} token {t} head {g}/{groupSize}");
            }
    }

    /// <summary>
    /// A sliding window (Gemma 2/3's local layers) and soft-capped scores: tokens at positions 29..98 under a window of
    /// 40 (the first eleven still see position 0, the rest only their last 40) with scores capped at 2, each against the
    /// reference over its window; and each token alone at its position gives the block's bits (decode = prefill).
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void WindowedSoftCappedBlockMatchesTheReference(int headDim, int groupSize)
    {
        const int firstPosition = 29, tokens = 70, end = firstPosition + tokens, window = 40;
        const float cap = 2f;
        int width = groupSize * headDim;
        float[] keys = Gaussian(end * headDim, 7), values = Gaussian(end * headDim, 8);
        float[] queries = Gaussian(tokens * width, 9, 2f);
        var output = new float[queries.Length];
        float scale = 1f / MathF.Sqrt(headDim);
        var rows = ContiguousKvRows.Of(keys, values, headDim);
        var block = new QueryBlock(queries, output, tokens, width, firstPosition, groupSize, headDim) { Window = window, SoftCap = cap };
        CausalAttention.Attend(block, rows, scale, new float[CausalAttention.ScratchLength(block.Count)]);
        var one = new float[width];
        for (int t = 0; t < tokens; t++)
        {
            int position = firstPosition + t, from = Math.Max(0, position + 1 - window);
            for (int g = 0; g < groupSize; g++)
            {
                int at = t * width + g * headDim;
                AssertMatches(queries.AsSpan(at, headDim), keys.AsSpan(from * headDim).ToArray(), values.AsSpan(from * headDim).ToArray(),
                    position + 1 - from, scale, output.AsSpan(at, headDim), $"headDim {headDim} token {t} head {g}/{groupSize}", cap);
            }
            var single = new QueryBlock(queries.AsSpan(t * width, width), one, 1, width, position, groupSize, headDim) { Window = window, SoftCap = cap };
            CausalAttention.Attend(single, rows, scale, new float[CausalAttention.ScratchLength(single.Count)]);
            Assert.True(one.AsSpan().SequenceEqual(output.AsSpan(t * width, width)), $"token {t} alone differs from the block");
        }
    }

    /// <summary>
    /// Learned sink logits (gpt-oss): each head's softmax has one more column with no value behind it. Sinks below,
    /// around and far above the scores (12: the sink is the softmax's max, and the output nearly vanishes) each match the
    /// reference, in a windowed prefill block and for each token alone (decode = prefill), and the largest sink shrinks
    /// the output as it must.
    /// </summary>
    [Theory]
    [InlineData(32, 4)]
    [InlineData(64, 8)]
    [InlineData(64, 1)]
    public void SinkLogitsMatchTheReference(int headDim, int groupSize)
    {
        const int firstPosition = 20, tokens = 50, end = firstPosition + tokens;
        int width = groupSize * headDim;
        float[] sinks = Enumerable.Range(0, groupSize).Select(g => new[] { -3f, 0.5f, 2f, 12f }[g % 4] + 0.1f * g).ToArray();
        float[] keys = Gaussian(end * headDim, 17), values = Gaussian(end * headDim, 18), queries = Gaussian(tokens * width, 19, 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        var rows = ContiguousKvRows.Of(keys, values, headDim);
        foreach (int window in new[] { 0, 16 })
        {
            var output = new float[queries.Length];
            var block = new QueryBlock(queries, output, tokens, width, firstPosition, groupSize, headDim) { Window = window, SinkLogits = sinks };
            CausalAttention.Attend(block, rows, scale, new float[CausalAttention.ScratchLength(block.Count)]);
            var one = new float[width];
            for (int t = 0; t < tokens; t++)
            {
                int position = firstPosition + t, from = window > 0 ? Math.Max(0, position + 1 - window) : 0;
                for (int g = 0; g < groupSize; g++)
                {
                    int at = t * width + g * headDim;
                    AssertMatches(queries.AsSpan(at, headDim), keys.AsSpan(from * headDim).ToArray(), values.AsSpan(from * headDim).ToArray(),
                        position + 1 - from, scale, output.AsSpan(at, headDim), $"window {window} token {t} head {g}/{groupSize} sink {sinks[g]}", sinkLogit: sinks[g]);
                }
                var single = new QueryBlock(queries.AsSpan(t * width, width), one, 1, width, position, groupSize, headDim) { Window = window, SinkLogits = sinks };
                CausalAttention.Attend(single, rows, scale, new float[CausalAttention.ScratchLength(single.Count)]);
                Assert.True(one.AsSpan().SequenceEqual(output.AsSpan(t * width, width)), $"window {window} token {t} alone differs from the block");
            }
            if (groupSize >= 4)
            {
                // Head 3's sink (12) takes nearly all its attention: its output is far smaller than head 0's (sink -3).
                double Size(int g) => Enumerable.Range(0, tokens).Sum(t => output.AsSpan(t * width + g * headDim, headDim).ToArray().Sum(x => Math.Abs(x)));
                Assert.True(Size(3) < 0.01 * Size(0), $"the large sink shrinks its head's output: {Size(3)} against {Size(0)}");
            }
        }
    }

    private static void AssertMatches(ReadOnlySpan<float> query, float[] keys, float[] values, int length, float scale,
        ReadOnlySpan<float> actual, string what, double softCap = 0, double? sinkLogit = null)
    {
        var expected = new float[query.Length];
        ReferenceAttention.Attend(query, keys, values, length, scale, expected, softCap, sinkLogit);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= Tolerance * (1 + Math.Abs(expected[i])),
                $"{what} element {i}: kernel {actual[i]}, reference {expected[i]}");
    }
}
