using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Attention;

/// <summary>
/// A block of queries (many tokens of one sequence at once, as in a prefill) gives every query exactly the bits it
/// gets alone (as in a decode), through contiguous rows and through block tables, whatever the block boundaries.
/// </summary>
public class QueryBlockTests
{
    private const int KvHeads = 2, Head = 1, Positions = 100;
    // Tokens at positions 21..81: their causal bounds straddle the tile boundaries at 32 and 64.
    private const int FirstPosition = 21, Tokens = 61;

    private static ModelConfig Config(int headDim, int groupSize) => new()
    {
        Architecture = "llama", EmbeddingDim = KvHeads * groupSize * headDim, LayerCount = 1, HeadCount = KvHeads * groupSize,
        KvHeadCount = KvHeads, HeadDim = headDim, FeedForwardDim = 1, VocabSize = 1, TrainedContextLength = Positions,
        RmsNormEps = 1e-5f, RopeTheta = 10000, RopeStyle = RopeStyle.Normal, RopeDimensions = headDim,
    };

    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        foreach (var (headDim, groupSize) in new[] { (64, 1), (64, 4), (48, 3), (20, 2), (8, 1), (128, 1) })
            foreach (int cacheBlock in new[] { 0, 1, 7, 16 }) // 0: contiguous cache, else paged with this block size
                data.Add(headDim, groupSize, cacheBlock);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BlocksGiveEachQueryItsOwnBits(int headDim, int groupSize, int cacheBlock)
    {
        var config = Config(headDim, groupSize);
        int kvDim = config.KvDim, queryDim = config.QueryDim, width = groupSize * headDim;
        float[] keys = Gaussian(Positions * kvDim, 1), values = Gaussian(Positions * kvDim, 2);
        float[] queries = Gaussian(Tokens * queryDim, 3, 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        using var pool = new KvBlockPool(config, Math.Max(cacheBlock, 1), Positions);
        IKvStore store = cacheBlock == 0 ? new KvCache(config, KvCacheMode.Contiguous, Positions) : new PagedKvSequence(pool, Positions);
        store.Reserve(Positions);
        for (int p = 0; p < Positions; p++) store.Write(0, p, keys.AsSpan(p * kvDim, kvDim), values.AsSpan(p * kvDim, kvDim));
        store.Commit(Positions);

        // One token at a time: each query alone.
        var alone = new float[Tokens * queryDim];
        var scratch = new float[CausalAttention.ScratchLength(Tokens * groupSize)];
        for (int t = 0; t < Tokens; t++)
        {
            int at = t * queryDim + Head * width;
            store.Attend(0, Head, QueryBlock.Single(queries.AsSpan(at, width), alone.AsSpan(at, width), groupSize, headDim, FirstPosition + t + 1),
                scale, scratch);
        }

        foreach (int blockTokens in new[] { 2, 5, 16, 32, Tokens }) // 2, 5, 16, 32 do not divide 61
        {
            var blocked = new float[Tokens * queryDim];
            for (int first = 0; first < Tokens; first += blockTokens)
            {
                int tokens = Math.Min(blockTokens, Tokens - first), at = first * queryDim + Head * width;
                int span = (tokens - 1) * queryDim + width;
                var block = new QueryBlock(queries.AsSpan(at, span), blocked.AsSpan(at, span), tokens, queryDim,
                    FirstPosition + first, groupSize, headDim);
                store.Attend(0, Head, block, scale, scratch);
            }
            for (int i = 0; i < alone.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(alone[i]) == BitConverter.SingleToInt32Bits(blocked[i]),
                    $"blocks of {blockTokens}: token {i / queryDim} element {i % queryDim}: {blocked[i]} vs {alone[i]} alone");
        }
    }

    [Fact]
    public void ABlockReadsNoRowPastItsLastToken()
    {
        // The rows end at the last token's position and ContiguousKvRows throws on a request past them: the tile
        // holding the block's end is read only up to it.
        const int headDim = 64, end = FirstPosition + Tokens;
        float[] keys = Gaussian(end * headDim, 4), values = Gaussian(end * headDim, 5), queries = Gaussian(Tokens * headDim, 6);
        var output = new float[Tokens * headDim];
        var block = new QueryBlock(queries, output, Tokens, headDim, FirstPosition, 1, headDim);
        CausalAttention.Attend(block, ContiguousKvRows.Of(keys, values, headDim), 0.125f, new float[CausalAttention.ScratchLength(Tokens)]);
        Assert.All(output, x => Assert.True(float.IsFinite(x)));
    }

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 3)]
    [InlineData(48, 2)]
    [InlineData(20, 1)]
    [InlineData(8, 2)]
    [InlineData(128, 1)]
    [InlineData(40, 3)] // rows of 160 bytes, read row by row, with a last 8 columns: pairs and an odd query
    public void EachQueryRunsTheDocumentedArithmetic(int headDim, int groupSize)
    {
        // Per query: tiles of TileSize keys at absolute multiples of it; scores in Dot's order times the scale; the
        // running max, exp(old max - new max) correction and sum in key order; values accumulated one FMA per key
        // in key order; finally times 1 / sum. Written out scalar here, it must match the kernel bit for bit (as it
        // matched the kernel that attended one token at a time) for every causal bound 1..Positions.
        float[] keys = Gaussian(Positions * headDim, 7), values = Gaussian(Positions * headDim, 8);
        float[] queries = Gaussian(Positions * groupSize * headDim, 9, 2f);
        var output = new float[queries.Length];
        int width = groupSize * headDim;
        var block = new QueryBlock(queries, output, Positions, width, 0, groupSize, headDim);
        CausalAttention.Attend(block, ContiguousKvRows.Of(keys, values, headDim), 0.125f,
            new float[CausalAttention.ScratchLength(Positions * groupSize)]);
        for (int t = 0; t < Positions; t++)
            for (int g = 0; g < groupSize; g++)
            {
                int at = t * width + g * headDim;
                float[] want = Reference(queries.AsSpan(at, headDim), keys, values, headDim, t + 1, 0.125f);
                for (int i = 0; i < headDim; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(output[at + i]),
                        $"token {t} head {g} element {i}: {output[at + i]} vs {want[i]}");
            }

        // The same tokens one at a time, as decode attends them (a block of one token reads rows over two cache lines
        // in row order): the same bits.
        var one = new float[width];
        for (int t = 0; t < Positions; t++)
        {
            var single = new QueryBlock(queries.AsSpan(t * width, width), one, 1, width, t, groupSize, headDim);
            CausalAttention.Attend(single, ContiguousKvRows.Of(keys, values, headDim), 0.125f, new float[CausalAttention.ScratchLength(groupSize)]);
            for (int i = 0; i < width; i++)
                Assert.True(BitConverter.SingleToInt32Bits(output[t * width + i]) == BitConverter.SingleToInt32Bits(one[i]),
                    $"decode of token {t}, element {i}: {one[i]} vs {output[t * width + i]}");
        }
    }

    private static float[] Reference(ReadOnlySpan<float> q, float[] keys, float[] values, int headDim, int end, float scale)
    {
        var acc = new float[headDim];
        var s = new float[CausalAttention.TileSize];
        float runningMax = float.NegativeInfinity, runningSum = 0;
        for (int tileStart = 0; tileStart < end; tileStart += CausalAttention.TileSize)
        {
            int length = Math.Min(CausalAttention.TileSize, end - tileStart);
            float tileMax = float.NegativeInfinity;
            for (int j = 0; j < length; j++)
            {
                s[j] = KeyScores.Dot(q, keys.AsSpan((tileStart + j) * headDim, headDim)) * scale;
                tileMax = MathF.Max(tileMax, s[j]);
            }
            float newMax = MathF.Max(runningMax, tileMax);
            float correction = MathF.Exp(runningMax - newMax);
            float sum = runningSum * correction;
            for (int j = 0; j < length; j++) sum += s[j] = FastExp.Scalar(s[j] - newMax);
            runningSum = sum;
            runningMax = newMax;
            if (correction != 1f)
                for (int c = 0; c < headDim; c++) acc[c] *= correction;
            for (int c = 0; c < headDim; c++)
                for (int j = 0; j < length; j++)
                    acc[c] = MathF.FusedMultiplyAdd(values[(tileStart + j) * headDim + c], s[j], acc[c]);
        }
        float inverse = 1f / runningSum;
        for (int c = 0; c < headDim; c++) acc[c] *= inverse;
        return acc;
    }
}
