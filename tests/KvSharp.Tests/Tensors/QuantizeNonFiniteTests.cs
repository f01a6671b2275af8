using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>Activations turn NaN or infinite when weights are damaged; quantizing them must not crash, and must stay non-finite.</summary>
public class QuantizeNonFiniteTests
{
    [Theory]
    [InlineData(float.NaN, 0)]
    [InlineData(float.NaN, 255)]
    [InlineData(float.PositiveInfinity, 17)]
    [InlineData(float.NegativeInfinity, 255)]
    public void Q8KOfANonFiniteRowHasANaNScale(float bad, int at)
    {
        var x = new float[2 * BlockLayouts.QK_K];
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
        x[at] = bad;
        var q = new byte[2 * BlockLayouts.Q8_KBytes];
        Quantize.Row(GgmlType.Q8_K, x, q);
        Assert.True(float.IsNaN(BitConverter.ToSingle(q, 0)), "the damaged block's scale");
        float second = BitConverter.ToSingle(q, BlockLayouts.Q8_KBytes);
        Assert.True(float.IsFinite(second) && second != 0, "the next block is quantized as usual");
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q8_1)]
    public void Q8BlocksOfANonFiniteRowDoNotThrow(GgmlType type)
    {
        var x = new float[64];
        x[3] = float.NaN;
        x[40] = float.PositiveInfinity;
        Quantize.Row(type, x, new byte[GgmlTypes.RowBytes(type, x.Length)]);
    }
}
