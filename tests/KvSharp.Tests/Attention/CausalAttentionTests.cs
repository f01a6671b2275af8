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
}
