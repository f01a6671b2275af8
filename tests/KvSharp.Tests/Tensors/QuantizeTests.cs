using System.Buffers.Binary;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

public class QuantizeTests
{
    /// <summary>Relative RMS error bound of quantize -> dequantize on N(0,1) data, per type (measured values are ~2/3 of these).</summary>
    public static double RelativeRmsBound(GgmlType t) => t switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 5e-4,
        GgmlType.BF16 => 4e-3,
        GgmlType.Q8_0 => 0.01,
        GgmlType.Q6_K => 0.03,
        GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q5_K => 0.06,
        GgmlType.Q4_0 or GgmlType.Q4_K => 0.12,
        GgmlType.Q3_K => 0.23,
        GgmlType.Q2_K => 0.45,
        GgmlType.Q4_1 => 0.12,
        GgmlType.IQ4_NL => 0.12,
        GgmlType.IQ4_XS => 0.12,
        GgmlType.MXFP4 => 0.17, // measures ~0.115: E2M1's top step is a third of its largest level
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void RoundTripErrorIsSmall(GgmlType type)
    {
        const int n = 4096;
        foreach (var (mean, std, seed) in new[] { (0f, 1f, 1), (0.5f, 0.02f, 2), (-3f, 10f, 3) })
        {
            float[] x = Gaussian(n, seed, std, mean);
            float[] y = DequantizeRow(type, QuantizeRow(type, x), n);
            double err = 0, sig = 0;
            for (int i = 0; i < n; i++) { err += (x[i] - y[i]) * (double)(x[i] - y[i]); sig += x[i] * (double)x[i]; }
            double rel = Math.Sqrt(err / sig);
            Assert.True(rel <= RelativeRmsBound(type), $"{type} mean {mean} std {std}: relative RMS error {rel:G4} > {RelativeRmsBound(type)}");
        }
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void ZerosStayZero(GgmlType type)
    {
        var y = DequantizeRow(type, QuantizeRow(type, new float[256]), 256);
        Assert.All(y, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Q8_0MatchesLlamaCppAvx2Rounding()
    {
        // amax 127 -> id = 1: values round half to even (2.5 -> 2, 3.5 -> 4, -0.5 -> 0), d = 1.
        var x = new float[32];
        x[0] = 127; x[1] = 2.5f; x[2] = 3.5f; x[3] = -0.5f; x[4] = -1.5f; x[5] = -127;
        var q = QuantizeRow(GgmlType.Q8_0, x);
        Assert.Equal((ushort)0x3C00, BinaryPrimitives.ReadUInt16LittleEndian(q)); // f16 1.0
        Assert.Equal(new sbyte[] { 127, 2, 4, 0, -2, -127 }, q.Skip(2).Take(6).Select(b => (sbyte)b).ToArray());
    }

    [Fact]
    public void Q8_1StoresScaledSum()
    {
        float[] x = Gaussian(64, 7);
        var q = QuantizeRow(GgmlType.Q8_1, x);
        for (int b = 0; b < 2; b++)
        {
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(q.AsSpan(36 * b)));
            float s = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(q.AsSpan(36 * b + 2)));
            float amax = x.Skip(32 * b).Take(32).Max(MathF.Abs);
            int sum = q.Skip(36 * b + 4).Take(32).Sum(v => (int)(sbyte)v);
            Assert.Equal((float)(Half)(amax / 127f), d);
            Assert.Equal((float)(Half)(amax / 127f * sum), s);
        }
    }

    [Fact]
    public void Q8_KKeepsSignedMaxAndBsums()
    {
        float[] x = Gaussian(512, 11);
        x[17] = 9f; // largest magnitude positive -> iscale negative -> d negative, that element -> -127
        x[300] = -8f;
        var q = QuantizeRow(GgmlType.Q8_K, x);
        float d0 = BinaryPrimitives.ReadSingleLittleEndian(q);
        Assert.Equal(1 / (-127f / 9f), d0);
        Assert.Equal(-127, (sbyte)q[4 + 17]);
        float d1 = BinaryPrimitives.ReadSingleLittleEndian(q.AsSpan(292));
        Assert.Equal(1 / (-127f / -8f), d1);
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < 16; k++)
            {
                int sum = 0;
                for (int i = 0; i < 16; i++) sum += (sbyte)q[292 * b + 4 + 16 * k + i];
                Assert.Equal(sum, BinaryPrimitives.ReadInt16LittleEndian(q.AsSpan(292 * b + 260 + 2 * k)));
            }
        var y = DequantizeRow(GgmlType.Q8_K, q, 512);
        for (int i = 0; i < 512; i++) Assert.True(Math.Abs(x[i] - y[i]) <= Math.Abs(i < 256 ? d0 : d1) * 0.5001f);
    }

    [Fact]
    public void HalfAndBFloatRoundToNearestEven()
    {
        // 1 + 2^-11 is halfway between two halves: ties to even (1.0); 1 + 3*2^-11 rounds up to 1 + 2^-9.
        var q = QuantizeRow(GgmlType.F16, [1 + MathF.Pow(2, -11), 1 + 3 * MathF.Pow(2, -11)]);
        Assert.Equal(new float[] { 1f, 1 + MathF.Pow(2, -9) }, DequantizeRow(GgmlType.F16, q, 2));
        var b = QuantizeRow(GgmlType.BF16, [1 + MathF.Pow(2, -8), 1 + 3 * MathF.Pow(2, -8), float.NaN]);
        var bf = DequantizeRow(GgmlType.BF16, b, 3);
        Assert.Equal(1f, bf[0]);
        Assert.Equal(1 + MathF.Pow(2, -6), bf[1]);
        Assert.True(float.IsNaN(bf[2]));
    }

    [Fact]
    public void Q4_0HandBuiltBlock()
    {
        var blk = new byte[18];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, BitConverter.HalfToUInt16Bits((Half)0.5f));
        for (int j = 0; j < 16; j++) blk[2 + j] = (byte)(j | ((15 - j) << 4));
        var y = DequantizeRow(GgmlType.Q4_0, blk, 32);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal((j - 8) * 0.5f, y[j]);
            Assert.Equal((15 - j - 8) * 0.5f, y[j + 16]);
        }
    }

    [Fact]
    public void WrongSizesAreRejectedWithAClearMessage()
    {
        var ex = Assert.Throws<ArgumentException>(() => Quantize.Row(GgmlType.Q8_0, new float[33], new byte[100]));
        Assert.Contains("Q8_0", ex.Message);
        Assert.Throws<ArgumentException>(() => Dequantize.Row(GgmlType.Q4_K, new byte[100], new float[256]));
    }
}

public class HalfConversionTests
{
    [Fact]
    public void ScalarHalfToFloatIsExactForEveryHalf()
    {
        for (int i = 0; i < 65536; i++)
        {
            float want = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            float got = KvSharp.Tensors.BlockLayouts.HalfToFloat((ushort)i);
            float computed = KvSharp.Tensors.BlockLayouts.HalfToFloatComputed((ushort)i);
            Assert.True(BitConverter.SingleToInt32Bits(computed) == BitConverter.SingleToInt32Bits(got), $"0x{i:x4}: table vs computed");
            if (float.IsNaN(want)) Assert.True(float.IsNaN(got), $"0x{i:x4}");
            else Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got), $"0x{i:x4}: {got:R} vs {want:R}");
        }
    }
}

public class VectorHalfConversionTests
{
    private static void Check(float[] x)
    {
        var q = new ushort[x.Length];
        KvSharp.Tensors.HalfConvert.ToHalf(x, q);
        var r = (float[])x.Clone();
        KvSharp.Tensors.FloatOps.RoundToHalf(r);
        for (int i = 0; i < x.Length; i++)
        {
            if (float.IsNaN(x[i]))
            {
                Assert.True(Half.IsNaN(BitConverter.UInt16BitsToHalf(q[i])));
                Assert.True(float.IsNaN(r[i]));
                continue;
            }
            ushort want = BitConverter.HalfToUInt16Bits((Half)x[i]);
            Assert.True(want == q[i], $"{x[i]:R} (0x{BitConverter.SingleToUInt32Bits(x[i]):x8}): 0x{q[i]:x4} vs (Half) 0x{want:x4}");
            Assert.Equal(BitConverter.SingleToInt32Bits((float)(Half)x[i]), BitConverter.SingleToInt32Bits(r[i]));
        }
    }

    [Fact]
    public void MatchesHalfCastAcrossTheWholeFloatRange()
    {
        // A stride through all 2^32 bit patterns (odd stride: every exponent and many mantissas), then every half's
        // exact value, its neighbours and the midpoints between consecutive halves (the ties).
        var xs = new List<float>();
        for (ulong b = 0; b < (1UL << 32); b += 1021) xs.Add(BitConverter.UInt32BitsToSingle((uint)b));
        for (int h = 0; h < 65535; h++)
        {
            float a = (float)BitConverter.UInt16BitsToHalf((ushort)h), b = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            if (float.IsNaN(a) || float.IsNaN(b) || float.IsInfinity(a) || float.IsInfinity(b)) continue;
            xs.Add(a);
            xs.Add((float)(((double)a + b) / 2));
            xs.Add(BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(a) + 1));
            xs.Add(BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(a) - 1));
        }
        xs.AddRange([65504f, 65519.99f, 65520f, 65536f, 1e10f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 5.96e-8f, 2.98e-8f, 2.99e-8f, -0f]);
        Check(xs.ToArray());
    }
}
