using KvSharp.Attention;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Attention;

public class CausalAttentionTests
{
    /// <summary>softmax(q·Kᵀ·scale)·V in double precision, the textbook way.</summary>
    private static double[] Naive(float[] q, float[] keys, float[] values, int headDim, int end, float scale)
    {
        var scores = new double[end];
        double max = double.NegativeInfinity;
        for (int j = 0; j < end; j++)
        {
            double s = 0;
            for (int i = 0; i < headDim; i++) s += (double)q[i] * keys[j * headDim + i];
            scores[j] = s * scale;
            max = Math.Max(max, scores[j]);
        }
        double sum = 0;
        for (int j = 0; j < end; j++) sum += scores[j] = Math.Exp(scores[j] - max);
        var o = new double[headDim];
        for (int j = 0; j < end; j++)
            for (int i = 0; i < headDim; i++) o[i] += scores[j] / sum * values[j * headDim + i];
        return o;
    }

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 4)]
    [InlineData(48, 2)]
    [InlineData(128, 1)]
    [InlineData(20, 3)]
    public void MatchesNaiveSoftmaxAttention(int headDim, int groupSize)
    {
        const int positions = 100;
        float[] keys = Gaussian(positions * headDim, 1), values = Gaussian(positions * headDim, 2);
        float[] queries = Gaussian(groupSize * headDim, 3, 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        var scratch = new float[CausalAttention.ScratchLength(groupSize)];
        foreach (int end in new[] { 1, 7, 31, 32, 33, 64, 100 })
        {
            var output = new float[groupSize * headDim];
            var rows = ContiguousKvRows.Of(keys, values, headDim);
            CausalAttention.AttendGroup(queries, rows, headDim, groupSize, end, scale, output, scratch);
            for (int g = 0; g < groupSize; g++)
            {
                double[] want = Naive(queries[(g * headDim)..((g + 1) * headDim)], keys, values, headDim, end, scale);
                for (int i = 0; i < headDim; i++)
                    Assert.True(Math.Abs(want[i] - output[g * headDim + i]) <= 2e-5 * (1 + Math.Abs(want[i])),
                        $"headDim {headDim} group {g}/{groupSize} end {end} element {i}: {output[g * headDim + i]} vs {want[i]}");
            }
        }
    }

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
