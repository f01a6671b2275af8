using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Attention;

/// <summary>
/// A decode token's KV heads attended together, tile by tile across the heads (<see cref="CausalAttention.AttendHeads"/>,
/// what the forward pass runs over a paged cache), give every head exactly the bits it gets alone.
/// </summary>
public class AttendHeadsTests
{
    private const int Positions = 100;

    private static ModelConfig Config(int kvHeads, int headDim, int groupSize) => new()
    {
        Architecture = "llama", EmbeddingDim = kvHeads * groupSize * headDim, LayerCount = 2, HeadCount = kvHeads * groupSize,
        KvHeadCount = kvHeads, HeadDim = headDim, FeedForwardDim = 1, VocabSize = 1, TrainedContextLength = Positions,
        RmsNormEps = 1e-5f, RopeTheta = 10000, RopeStyle = RopeStyle.Normal, RopeDimensions = headDim,
    };

    public static TheoryData<KvElementType, KvElementType, int, int, int, int> Cases()
    {
        var data = new TheoryData<KvElementType, KvElementType, int, int, int, int>();
        var types = new[]
        {
            (KvElementType.F32, KvElementType.F32), (KvElementType.F16, KvElementType.F16), (KvElementType.Q8_0, KvElementType.Q8_0),
            (KvElementType.Q4_0, KvElementType.Q4_0), (KvElementType.F16, KvElementType.Q8_0), (KvElementType.Q4_0, KvElementType.F32),
        };
        foreach (var (keys, values) in types)
            // (5, 128, 4): F16 keys take at most four such heads a call (their scaled queries), so five go in two calls.
            foreach (var (kvHeads, headDim, groupSize) in new[] { (4, 64, 1), (3, 64, 4), (2, 128, 2), (5, 32, 3), (5, 128, 4) })
                foreach (int blockSize in new[] { 1, 7, 16 })
                    data.Add(keys, values, kvHeads, headDim, groupSize, blockSize);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void HeadsTogetherGiveEachHeadItsOwnBits(KvElementType keyType, KvElementType valueType, int kvHeads, int headDim, int groupSize,
        int blockSize)
    {
        var config = Config(kvHeads, headDim, groupSize);
        int kvDim = config.KvDim, queryDim = config.QueryDim, width = groupSize * headDim, per = CausalAttention.ScratchLength(groupSize);
        float[] keys = Gaussian(Positions * kvDim, 1), values = Gaussian(Positions * kvDim, 2);
        using var pool = new KvBlockPool(config, blockSize, (Positions + blockSize - 1) / blockSize, KvElementFormat.Of(keyType, valueType));
        var store = new PagedKvSequence(pool, Positions);
        store.Reserve(Positions);
        for (int p = 0; p < Positions; p++)
        {
            store.Write(0, p, Gaussian(kvDim, 100 + p), Gaussian(kvDim, 300 + p)); // layer 0 differs from layer 1
            store.Write(1, p, keys.AsSpan(p * kvDim, kvDim), values.AsSpan(p * kvDim, kvDim));
        }
        store.Commit(Positions);

        // Positions 0 (one key), 31/32 (a tile's end and the next's start), 70 and the last: every tile shape.
        foreach (int position in new[] { 0, 5, 31, 32, 70, Positions - 1 })
            for (int first = 0; first < kvHeads; first++)
                for (int heads = 1; first + heads <= kvHeads; heads++)
                {
                    float[] queries = Gaussian(queryDim, 7 * position + first, 2f);
                    // Learned sink logits (gpt-oss) on every other case: one per query head, some above every score.
                    float[] sinks = (position + first) % 2 == 0 ? [] : Gaussian(queryDim / headDim, position + 3 * first, 3f);
                    var alone = new float[queryDim];
                    var scratch = new float[per];
                    for (int h = first; h < first + heads; h++)
                        store.Attend(1, h, QueryBlock.Single(queries.AsSpan(h * width, width), alone.AsSpan(h * width, width), groupSize, headDim,
                            position + 1) with { SinkLogits = sinks.Length == 0 ? default : sinks.AsSpan(h * groupSize, groupSize) }, 0.125f, scratch);

                    var together = new float[queryDim];
                    var headScratch = new float[(heads - 1) * (per + 3) + per]; // a stride larger than one head's scratch
                    bool taken = store.TryAttendHeads(1, first, heads, queries.AsSpan(first * width, heads * width),
                        together.AsSpan(first * width, heads * width), position, 0.125f, headScratch, per + 3,
                        sinks.Length == 0 ? default : sinks.AsSpan(first * groupSize, heads * groupSize));
                    // Every type here reads its rows in registers wherever AVX2 is (every CPU this project meets); F32 everywhere.
                    Assert.Equal(Avx2.IsSupported || keyType == KvElementType.F32 && valueType == KvElementType.F32, taken);
                    if (!taken) continue;
                    Assert.Equal(alone.AsSpan(first * width, heads * width).ToArray(), together.AsSpan(first * width, heads * width).ToArray());
                }
        store.Release();
    }

    /// <summary>
    /// An F16 query element too large to scale up exactly sends that head (only) to the tile of floats, as its own
    /// call would; the bits still match.
    /// </summary>
    [Fact]
    public void AHeadWhoseQueriesDoNotScaleIsScoredFromFloats()
    {
        var config = Config(3, 64, 2);
        int kvDim = config.KvDim, width = 2 * 64, per = CausalAttention.ScratchLength(2);
        using var pool = new KvBlockPool(config, 16, 7, KvElementType.F16);
        var store = new PagedKvSequence(pool, Positions);
        store.Reserve(Positions);
        for (int p = 0; p < Positions; p++)
            for (int l = 0; l < 2; l++) store.Write(l, p, Gaussian(kvDim, 10 + p, 0.01f), Gaussian(kvDim, 500 + p));
        store.Commit(Positions);
        float[] queries = Gaussian(config.QueryDim, 4);
        queries[width + 3] = 70000f; // head 1, beyond binary16's range once scaled
        var alone = new float[config.QueryDim];
        var scratch = new float[per];
        for (int h = 0; h < 3; h++)
            store.Attend(0, h, QueryBlock.Single(queries.AsSpan(h * width, width), alone.AsSpan(h * width, width), 2, 64, Positions), 0.125f, scratch);
        var together = new float[config.QueryDim];
        if (!store.TryAttendHeads(0, 0, 3, queries, together, Positions - 1, 0.125f, new float[3 * per], per))
        {
            Assert.False(Avx2.IsSupported); // F16 rows are read in registers wherever AVX2 is
            return;
        }
        Assert.Equal(alone, together);
        Assert.All(together, x => Assert.True(float.IsFinite(x)));
        store.Release();
    }

    /// <summary>What cannot be taken together says so and leaves the work to the caller, head by head.</summary>
    [Fact]
    public void StoresThatCannotTakeHeadsTogetherDeclineAndWriteNothing()
    {
        var config = Config(2, 64, 1);
        int per = CausalAttention.ScratchLength(1);
        // KIVI rows read differently for later queries; a window policy attends to the positions it keeps.
        using var kivi = new KvBlockPool(config, 32, 4, KvElementType.Kivi4);
        using var f32 = new KvBlockPool(config, 16, 8);
        var stores = new[] { new PagedKvSequence(kivi, 64), new PagedKvSequence(f32, 64, KvCachePolicy.SlidingWindow(16)) };
        foreach (var store in stores)
        {
            store.Reserve(8);
            for (int p = 0; p < 8; p++)
                for (int l = 0; l < 2; l++) store.Write(l, p, Gaussian(config.KvDim, p), Gaussian(config.KvDim, 50 + p));
            store.Commit(8);
            var output = new float[config.QueryDim];
            Array.Fill(output, 3f);
            Assert.False(store.TryAttendHeads(0, 0, 2, Gaussian(config.QueryDim, 9), output, 7, 0.125f, new float[2 * per], per));
            Assert.All(output, x => Assert.Equal(3f, x));
            store.Release();
        }
        Assert.False(new KvCache(config, KvCacheMode.Contiguous, 64) is IKvStore contiguous
            && contiguous.TryAttendHeads(0, 0, 2, new float[config.QueryDim], new float[config.QueryDim], 0, 1f, new float[2 * per], per));
    }
}
