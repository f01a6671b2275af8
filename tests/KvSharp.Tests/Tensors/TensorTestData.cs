using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>Deterministic random data and quantized rows for the kernel tests.</summary>
internal static class TensorTestData
{
    public static readonly GgmlType[] WeightTypes =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q5_1,
        GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
        GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.Q4_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.MXFP4,
    ];

    public static TheoryData<GgmlType> WeightTypeData()
    {
        var d = new TheoryData<GgmlType>();
        foreach (var t in WeightTypes) d.Add(t);
        return d;
    }

    public static float[] Gaussian(int n, int seed, float std = 1f, float mean = 0f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = mean + std * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    public static byte[] QuantizeRow(GgmlType type, ReadOnlySpan<float> x)
    {
        var q = new byte[GgmlTypes.RowBytes(type, x.Length)];
        Quantize.Row(type, x, q);
        return q;
    }

    public static float[] DequantizeRow(GgmlType type, ReadOnlySpan<byte> q, int n)
    {
        var y = new float[n];
        Dequantize.Row(type, q, y);
        return y;
    }

    /// <summary>Smallest row length that is a whole number of blocks of both the weight and its activation type.</summary>
    public static int Granule(GgmlType weightType) =>
        Math.Max(GgmlTypes.BlockSize(weightType), GgmlTypes.BlockSize(GgmlTypes.VecDotType(weightType)));
}
