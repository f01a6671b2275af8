using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

public class VecDotTests
{
    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void MatchesDotOfDequantizedRows(GgmlType type)
    {
        GgmlType at = GgmlTypes.VecDotType(type);
        foreach (int blocks in new[] { 1, 3, 8 })
        {
            int n = Granule(type) * blocks;
            float[] w = Gaussian(n, 100 + blocks, 0.1f);
            float[] x = Gaussian(n, 200 + blocks);
            byte[] wq = QuantizeRow(type, w), xq = QuantizeRow(at, x);
            float[] wd = DequantizeRow(type, wq, n), xd = DequantizeRow(at, xq, n);

            double exact = 0, vsFloat = 0, norm = 0;
            for (int i = 0; i < n; i++)
            {
                exact += (double)wd[i] * xd[i];
                vsFloat += (double)wd[i] * x[i];
                norm += Math.Abs((double)wd[i] * x[i]);
            }
            float got = VecDot.Dot(type, wq, xq, n);
            // Against the dot of the dequantized rows only float rounding differs, except that Q5_1/Q4_1 x Q8_1 use the
            // block sum s = d*sum(q) which Q8_1 stores rounded to f16 (relative error 2^-11 on the min term).
            double rel = type is GgmlType.Q5_1 or GgmlType.Q4_1 ? 1e-3 : 1e-5;
            Assert.True(Math.Abs(got - exact) <= rel * norm + 1e-6, $"{type} n={n}: {got} vs dequantized {exact}");
            // Against the float activations, the activation quantization error (Q8: ~0.4% per element, random signs).
            double tol = at switch { GgmlType.F32 => 1e-5, GgmlType.F16 => 2e-3, GgmlType.BF16 => 1e-2, _ => 2e-2 } * norm;
            Assert.True(Math.Abs(got - vsFloat) <= tol, $"{type} n={n}: {got} vs float activations {vsFloat} (tol {tol})");
        }
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void Avx2AndPortableKernelsAgreeBitForBit(GgmlType type)
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        GgmlType at = GgmlTypes.VecDotType(type);
        var lengths = new List<int> { Granule(type), 4 * Granule(type), 11 * Granule(type) };
        if (GgmlTypes.BlockSize(type) == 1) lengths.AddRange([1, 7, 31, 33, 172, 1000]);
        int seed = 0;
        foreach (int n in lengths)
            for (int rep = 0; rep < 20; rep++, seed++)
            {
                // Mix scales so blocks differ wildly in magnitude, plus exact zeros.
                float[] w = Gaussian(n, 1000 + seed, rep % 3 == 0 ? 10f : 0.05f, rep % 4 == 1 ? 0.3f : 0f);
                float[] x = Gaussian(n, 2000 + seed, rep % 2 == 0 ? 1f : 100f);
                if (rep == 5) Array.Clear(x, 0, Math.Min(n, 64));
                byte[] wq = QuantizeRow(type, w), xq = QuantizeRow(at, x);
                float a = VecDot.Dot(type, wq, xq, n, avx2: true);
                float s = VecDot.Dot(type, wq, xq, n, avx2: false);
                Assert.True(BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(s),
                    $"{type} n={n} rep={rep}: AVX2 {a:R} != portable {s:R}");
            }
    }

    [Fact]
    public void RandomBytesAlsoAgree()
    {
        // Arbitrary (not quantizer-produced) weight bytes: every bit pattern of the quants and scales is exercised.
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        var rng = new Random(5);
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
                     GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.Q4_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS })
        {
            int n = 512;
            for (int rep = 0; rep < 50; rep++)
            {
                byte[] wq = RandomWeights(type, n, rng);
                byte[] xq = QuantizeRow(GgmlTypes.VecDotType(type), Gaussian(n, rep));
                float a = VecDot.Dot(type, wq, xq, n, avx2: true);
                float s = VecDot.Dot(type, wq, xq, n, avx2: false);
                Assert.True(BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(s), $"{type} rep={rep}: {a:R} != {s:R}");
            }
        }
    }

    /// <summary>
    /// A row of arbitrary (not quantizer-produced) weight bytes, so every bit pattern of the quants and scales is
    /// exercised, with every block's f16 scale fields overwritten by small finite halves.
    /// </summary>
    private static byte[] RandomWeights(GgmlType type, int n, Random rng)
    {
        byte[] wq = new byte[GgmlTypes.RowBytes(type, n)];
        rng.NextBytes(wq);
        int bb = GgmlTypes.BlockBytes(type);
        for (int b = 0; b < wq.Length / bb; b++)
        {
            int off = type switch { GgmlType.Q6_K => b * bb + 208, GgmlType.Q3_K => b * bb + 108, GgmlType.Q2_K => b * bb + 80, _ => b * bb };
            BitConverter.TryWriteBytes(wq.AsSpan(off), BitConverter.HalfToUInt16Bits((Half)(rng.NextDouble() * 0.1)));
            if (type is GgmlType.Q5_1 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q2_K or GgmlType.Q4_1)
                BitConverter.TryWriteBytes(wq.AsSpan(off + 2), BitConverter.HalfToUInt16Bits((Half)(rng.NextDouble() * 0.1)));
        }
        if (type == GgmlType.Q8_0) for (int i = 0; i < wq.Length; i++) if (i % 34 >= 2 && wq[i] == 0x80) wq[i] = 0x81; // -128 is not produced by ggml
        return wq;
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public unsafe void FourTokenKernelsEqualTheSingleTokenKernel(GgmlType type)
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        var k4 = VecDot.Kernel4(type, avx2: true);
        if (k4 == null) return; // this type has no four-token kernel; MatMul uses the single one
        var k1 = VecDot.Kernel(type, avx2: true);
        GgmlType at = GgmlTypes.VecDotType(type);
        foreach (int n in new[] { Granule(type), 3 * Granule(type), GgmlTypes.BlockSize(type) == 1 ? 172 : 4 * Granule(type) })
            for (int rep = 0; rep < 10; rep++)
            {
                // Quantizer-made rows, and (odd reps) arbitrary bytes: every quant and scale pattern, e.g. IQ4_XS's 6-bit
                // scales and Q3_K's packed ones, which no quantizer run may produce.
                byte[] wq = rep % 2 == 0 ? QuantizeRow(type, Gaussian(n, 70 + rep, rep % 4 == 0 ? 1f : 0.01f))
                    : RandomWeights(type, n, new Random(rep));
                int ab = (int)GgmlTypes.RowBytes(at, n);
                byte[] acts = new byte[4 * ab];
                for (int t = 0; t < 4; t++) QuantizeRow(at, Gaussian(n, 80 + 4 * rep + t, 1f + t)).CopyTo(acts, t * ab);
                fixed (float* four = new float[4])
                fixed (byte* w = wq)
                fixed (byte* a = acts)
                {
                    k4(w, a, ab, n, four);
                    for (int t = 0; t < 4; t++)
                    {
                        float one = k1(w, a + t * ab, n);
                        Assert.True(BitConverter.SingleToInt32Bits(one) == BitConverter.SingleToInt32Bits(four[t]), $"{type} n={n} token {t}: {four[t]:R} vs {one:R}");
                    }
                }
            }
    }

    [Fact]
    public void Avx2HalfConversionIsExactForEveryHalf()
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        unsafe
        {
            fixed (ushort* p = all)
                for (int i = 0; i < all.Length; i += 8)
                {
                    var v = VecDotAvx2.HalfToSingle(p + i);
                    for (int k = 0; k < 8; k++)
                    {
                        float want = (float)BitConverter.UInt16BitsToHalf(all[i + k]);
                        if (float.IsNaN(want)) Assert.True(float.IsNaN(v[k]));
                        else Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(v[k]));
                    }
                }
        }
    }
}
