using System.Runtime.Intrinsics;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

[Collection(nameof(KernelSwitchCollection))]
public class FloatOpsTests
{
    private static float[] Both(Action<float[]> op, float[] input, out float[] portable)
    {
        float[] fast = (float[])input.Clone();
        op(fast);
        portable = (float[])input.Clone();
        using (KernelPaths.Force(KernelPath.Scalar))
            op(portable);
        return fast;
    }

    private static void AssertBitsEqual(float[] a, float[] b, string what)
    {
        for (int i = 0; i < a.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i]), $"{what}: element {i}: {a[i]:R} vs {b[i]:R}");
    }

    [Fact]
    public void FastExpIsAccurateAndItsTwoPathsAgree()
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        var xs = new List<float> { 0f, -0f, 1f, -1f, 88f, 88.7f, 89f, -87f, -103f, -104f, -110f, -200f, 200f, float.NegativeInfinity, 1e-30f };
        var rng = new Random(3);
        for (int i = 0; i < 20000; i++) xs.Add((float)(rng.NextDouble() * 220 - 120));
        while (xs.Count % 8 != 0) xs.Add(0.5f);
        for (int i = 0; i < xs.Count; i += 8)
        {
            var v = FastExp.Avx2Exp(System.Runtime.Intrinsics.Vector256.Create(xs.GetRange(i, 8).ToArray()));
            for (int l = 0; l < 8; l++)
            {
                float x = xs[i + l], s = FastExp.Scalar(x);
                Assert.True(BitConverter.SingleToInt32Bits(v[l]) == BitConverter.SingleToInt32Bits(s), $"exp({x:R}): AVX2 {v[l]:R} vs scalar {s:R}");
                if (x > -87f && x < 88f)
                {
                    double want = Math.Exp(x);
                    Assert.True(Math.Abs(s - want) <= 4e-7 * want, $"exp({x:R}) = {s:R}, want {want:R}");
                }
            }
        }
        Assert.Equal(0f, FastExp.Scalar(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, FastExp.Scalar(200f));
    }

    [Fact]
    public void RmsNormMatchesDefinition()
    {
        float[] x = Gaussian(259, 1, 2f), w = Gaussian(259, 2, 0.05f, 1f);
        var y = new float[259];
        FloatOps.RmsNorm(x, w, 1e-5f, y);
        double ms = x.Sum(v => (double)v * v) / x.Length;
        for (int i = 0; i < x.Length; i++)
        {
            double want = x[i] / Math.Sqrt(ms + 1e-5) * w[i];
            Assert.True(Math.Abs(y[i] - want) <= 1e-6 * Math.Abs(want) + 1e-9, $"{i}: {y[i]} vs {want}");
        }
        // In place gives the same.
        FloatOps.RmsNorm(x, w, 1e-5f, x);
        AssertBitsEqual(y, x, "in place");
    }

    /// <summary>
    /// Rows normalised together (four sums of squares side by side) have the bits of each row normalised alone, for
    /// every count of rows around the group of four, odd row lengths, rows of very different sizes, and in place.
    /// </summary>
    [Theory]
    [InlineData(259, 1)]
    [InlineData(259, 4)]
    [InlineData(768, 7)]
    [InlineData(5, 9)]
    [InlineData(64, 16)]
    [InlineData(96, 2000)]
    public void RowsNormalisedTogetherHaveEachRowsBits(int dim, int rows)
    {
        float[] w = Gaussian(dim, 3, 0.05f, 1f);
        var x = new float[dim * rows];
        for (int r = 0; r < rows; r++)
        {
            float[] row = Gaussian(dim, 10 + r, MathF.Pow(10f, r % 5 - 2));
            row.CopyTo(x, r * dim);
        }
        var together = new float[x.Length];
        FloatOps.RmsNormRows(x, dim, w, 1e-5f, together);
        var alone = new float[dim];
        for (int r = 0; r < rows; r++)
        {
            FloatOps.RmsNorm(x.AsSpan(r * dim, dim), w, 1e-5f, alone);
            AssertBitsEqual(alone, together.AsSpan(r * dim, dim).ToArray(), $"row {r} of {rows}");
        }
        FloatOps.RmsNormRows(x, dim, w, 1e-5f, x);
        AssertBitsEqual(together, x, "in place");
        Assert.Throws<ArgumentException>(() => FloatOps.RmsNormRows(x.AsSpan(0, x.Length - 1), dim, w, 1e-5f, together));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(172)]
    [InlineData(768)]
    [InlineData(5)]
    public void SwiGluMatchesDefinitionAndPathsAgree(int n)
    {
        float[] gate = Gaussian(n, n, 4f), up = Gaussian(n, n + 1);
        float[] fast = Both(g => FloatOps.SwiGlu(g, up), gate, out float[] portable);
        if (VecDot.IsAvx2Supported) AssertBitsEqual(fast, portable, "SwiGlu AVX2 vs portable");
        for (int i = 0; i < n; i++)
        {
            double want = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
            Assert.True(Math.Abs(fast[i] - want) <= 1e-6 * Math.Abs(want) + 1e-12, $"{i}: silu({gate[i]})*{up[i]} = {fast[i]} vs {want}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(32003)]
    public void LogSumExpMaxAndCountGreaterMatchDefinitionsAndPathsAgree(int n)
    {
        float[] x = Gaussian(n, 70 + n, 6f);
        if (n > 2) x[1] = float.NegativeInfinity;
        float fast = FloatOps.LogSumExp(x), portable;
        using (KernelPaths.Force(KernelPath.Scalar)) portable = FloatOps.LogSumExp(x);
        Assert.Equal(BitConverter.SingleToInt32Bits(portable), BitConverter.SingleToInt32Bits(fast));
        double max = x.Max(), want = max + Math.Log(x.Sum(v => Math.Exp(v - max)));
        Assert.Equal(want, fast, 1e-5 * Math.Max(1, Math.Abs(want)));
        Assert.Equal((float)max, FloatOps.Max(x));
        foreach (float at in new[] { x[0], x[^1], (float)max, -1f, float.NegativeInfinity })
            Assert.Equal(x.Count(v => v > at), FloatOps.CountGreater(x, at));
        Assert.Equal(float.NegativeInfinity, FloatOps.LogSumExp([float.NegativeInfinity, float.NegativeInfinity]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(512)]
    public void SoftmaxMatchesDefinitionAndPathsAgree(int n)
    {
        float[] x = Gaussian(n, 40 + n, 5f);
        if (n > 2) x[1] = float.NegativeInfinity; // a masked position
        float[] fast = Both(v => FloatOps.Softmax(v), x, out float[] portable);
        if (VecDot.IsAvx2Supported) AssertBitsEqual(fast, portable, "Softmax AVX2 vs portable");
        double max = x.Max(), z = x.Sum(v => Math.Exp(v - max));
        for (int i = 0; i < n; i++)
        {
            double want = Math.Exp(x[i] - max) / z;
            Assert.True(Math.Abs(fast[i] - want) <= 1e-6 * want + 1e-9, $"{i}: {fast[i]} vs {want}");
        }
        if (n > 2) Assert.Equal(0f, fast[1]);
        Assert.Equal(1.0, fast.Sum(v => (double)v), 5);
    }

    [Fact]
    public void AddAndRounding()
    {
        float[] a = Gaussian(37, 5), b = Gaussian(37, 6);
        float[] c = (float[])a.Clone();
        FloatOps.Add(c, b);
        for (int i = 0; i < 37; i++) Assert.Equal(a[i] + b[i], c[i]);

        float[] h = [1 + MathF.Pow(2, -11), 70000f, 1e-8f, -3.14159f];
        FloatOps.RoundToHalf(h);
        Assert.Equal(new[] { 1f, float.PositiveInfinity, (float)(Half)1e-8f, (float)(Half)(-3.14159f) }, h);
        float[] bf = [1 + MathF.Pow(2, -8), 3.14159f];
        FloatOps.RoundToBFloat16(bf);
        Assert.Equal(new[] { 1f, 3.140625f }, bf);
    }

    [Fact]
    public void WideningHalvesIsExactForEveryBitPattern()
    {
        // Every binary16 value (subnormals, infinities and NaNs included), with a tail of 8 + 3 so the eight-half vector
        // step and the scalar loop run too. Bits must match (float)Half's, NaN sign and payload included.
        var halves = Enumerable.Range(0, 65536).Select(i => BitConverter.UInt16BitsToHalf((ushort)i))
            .Concat(Enumerable.Range(0, 11).Select(i => BitConverter.UInt16BitsToHalf((ushort)(0x7bfd + i)))).ToArray();
        var floats = new float[halves.Length];
        KvSharp.Tensors.HalfConvert.ToSingle(halves, floats);
        for (int i = 0; i < halves.Length; i++)
            AssertWidened(BitConverter.HalfToUInt16Bits(halves[i]), floats[i]);
        Assert.Throws<ArgumentException>(() => KvSharp.Tensors.HalfConvert.ToSingle(halves, new float[3]));
    }

    [Fact]
    public void VectorWideningGivesEveryHalfInOrder()
    {
        Assert.SkipUnless(KvSharp.Tensors.HalfConvert.CanWidenVectors, "no AVX2 on this machine");
        // Lanes hold consecutive bit patterns, so a lane out of order shows up as a wrong value.
        for (int start = 0; start < 65536; start += 16)
        {
            var h = Vector256.Create(Enumerable.Range(start, 16).Select(i => (ushort)i).ToArray());
            KvSharp.Tensors.HalfConvert.Widen16(h, out var lower, out var upper);
            var eight = KvSharp.Tensors.HalfConvert.Widen8(h.GetUpper());
            for (int k = 0; k < 8; k++)
            {
                AssertWidened((ushort)(start + k), lower[k]);
                AssertWidened((ushort)(start + 8 + k), upper[k]);
                AssertWidened((ushort)(start + 8 + k), eight[k]);
            }
        }
    }

    [Fact]
    public unsafe void TheAvx512DecodeWideningIsExactForEveryFiniteHalfAndFlagsTheRest()
    {
        Assert.SkipUnless(KvSharp.Tensors.KernelPaths.IsAvailable(KvSharp.Tensors.KernelPath.Avx512), "no AVX-512 on this machine");
        // Every bit pattern, sixteen consecutive ones per vector: a finite half widens to (float)Half's bits in its own
        // lane; an infinity or NaN (exponent 31) is what the magnitude must flag, and only those are.
        ushort* halves = stackalloc ushort[16];
        for (int start = 0; start < 65536; start += 16)
        {
            for (int k = 0; k < 16; k++) halves[k] = (ushort)(start + k);
            var floats = KvSharp.Tensors.VecDotAvx512F16.FiniteHalfToSingle(halves, out var magnitude);
            for (int k = 0; k < 16; k++)
            {
                ushort half = (ushort)(start + k);
                bool finite = (half & 0x7c00) != 0x7c00;
                Assert.True(finite == magnitude[k] <= KvSharp.Tensors.VecDotAvx512F16.LargestFiniteMagnitude, $"half bits {half:x4}: magnitude {magnitude[k]:x8}");
                if (finite) AssertWidened(half, floats[k]);
            }
        }
    }

    private static void AssertWidened(ushort half, float widened)
    {
        uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(half));
        Assert.True(expected == BitConverter.SingleToUInt32Bits(widened),
            $"half bits {half:x4}: expected {expected:x8}, got {BitConverter.SingleToUInt32Bits(widened):x8}");
    }
}
