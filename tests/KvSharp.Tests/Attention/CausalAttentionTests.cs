using KvSharp.Attention;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Attention;

public class CausalAttentionTests
{
    // The kernel against textbook attention (ReferenceAttention) for many shapes and lengths, decode and prefill:
    // tests/KvSharp.Tests/Reference/AttentionKernelMatchesReferenceTests.cs.

    [Fact]
    public void ResultDependsOnlyOnThePositionsAttended()
    {
        // What lies past the causal bound (later tokens of a prefill, or nothing in a decode) never changes a bit.
        const int headDim = 64, positions = 80, end = 45;
        float[] keys = Gaussian(positions * headDim, 4), values = Gaussian(positions * headDim, 5), q = Gaussian(2 * headDim, 6);
        float[] keys2 = (float[])keys.Clone(), values2 = (float[])values.Clone();
        for (int i = end * headDim; i < keys2.Length; i++) { keys2[i] = 1e3f; values2[i] = -7f; }
        var a = new float[2 * headDim];
        var b = new float[2 * headDim];
        var scratch = new float[CausalAttention.ScratchLength(2)];
        CausalAttention.AttendGroup(q, ContiguousKvRows.Of(keys, values, headDim), headDim, 2, end, 0.125f, a, scratch);
        CausalAttention.AttendGroup(q, ContiguousKvRows.Of(keys2.AsSpan(0, end * headDim), values2.AsSpan(0, end * headDim), headDim),
            headDim, 2, end, 0.125f, b, scratch);
        for (int i = 0; i < a.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(a[i]), BitConverter.SingleToInt32Bits(b[i]));
    }

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 4)]
    [InlineData(40, 3)]
    public void DeepDecodeOverFloatRowsGivesTheBitsOfABlock(int headDim, int groupSize)
    {
        // A decode token deep in contiguous F32 rows asks for them a few at a time as its tiles compute (the spread
        // path; from 256 positions) and scores and sums eight keys at a time; a block of tokens reads them whole tile
        // by tile. Tokens at 230..299 straddle that depth: each alone must give the block's bits.
        const int first = 230, tokens = 70, end = first + tokens;
        int width = groupSize * headDim;
        float[] keys = Gaussian(end * headDim, 11), values = Gaussian(end * headDim, 12), queries = Gaussian(tokens * width, 13, 2f);
        var rows = ContiguousKvRows.Of(keys, values, headDim);
        var blocked = new float[tokens * width];
        CausalAttention.Attend(new QueryBlock(queries, blocked, tokens, width, first, groupSize, headDim), rows, 0.125f,
            new float[CausalAttention.ScratchLength(tokens * groupSize)]);
        var alone = new float[tokens * width];
        var scratch = new float[CausalAttention.ScratchLength(groupSize)];
        for (int t = 0; t < tokens; t++)
            CausalAttention.AttendGroup(queries.AsSpan(t * width, width), rows, headDim, groupSize, first + t + 1, 0.125f,
                alone.AsSpan(t * width, width), scratch);
        for (int i = 0; i < alone.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(alone[i]) == BitConverter.SingleToInt32Bits(blocked[i]),
                $"token at {first + i / width}, element {i % width}: {alone[i]} alone, {blocked[i]} in the block");
    }
}
