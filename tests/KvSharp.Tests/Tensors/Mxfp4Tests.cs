using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// MXFP4 (gpt-oss's expert matrices): blocks decode as the OCP MX format defines them, the dot kernels agree with each
/// other bit for bit and with the dot of the dequantized rows, the quantizer is ggml's, and MatMul runs the type.
/// </summary>
[Collection(nameof(KernelSwitchCollection))]
public class Mxfp4Tests
{
    private const int BlockBytes = 17;

    /// <summary>E2M1's magnitudes by the low three bits of a code; bit 3 is the sign (OCP MX v1.0, table 5).</summary>
    private static readonly double[] E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

    /// <summary>
    /// What an element with 4-bit code <paramref name="code"/> in a block with scale byte <paramref name="e"/> is:
    /// ±E2M1 · 2^(e-127) (as a float: infinite past its range). The code of −0 reads as +0, as ggml's level table has it.
    /// </summary>
    private static float SpecValue(int e, int code)
    {
        float magnitude = (float)Math.ScaleB(E2M1[code & 7], e - 127);
        return (code & 8) != 0 && magnitude != 0 ? -magnitude : magnitude;
    }

    [Fact]
    public void BlocksDecodeToE2M1TimesTheirPowerOfTwo()
    {
        // Subnormal scales (e = 0, 1: 2^-128, 2^-127), the smallest normal one (2^-126), 2^-1 and 2^0 around the bias, a
        // large one, and the top two, where the larger levels overflow to infinity; each block's nibbles are shifted so
        // every code stands in both halves.
        int[] exponents = [0, 1, 2, 127, 128, 200, 254, 255];
        var row = new byte[exponents.Length * BlockBytes];
        for (int b = 0; b < exponents.Length; b++)
        {
            row[b * BlockBytes] = (byte)exponents[b];
            for (int j = 0; j < 16; j++) row[b * BlockBytes + 1 + j] = (byte)(((j + b) & 15) | (((15 - j + 3 * b) & 15) << 4));
        }
        float[] y = DequantizeRow(GgmlType.MXFP4, row, 32 * exponents.Length);
        for (int b = 0; b < exponents.Length; b++)
            for (int j = 0; j < 16; j++)
            {
                AssertSameFloat(SpecValue(exponents[b], (j + b) & 15), y[32 * b + j], $"block {b} (e = {exponents[b]}) element {j}");
                AssertSameFloat(SpecValue(exponents[b], (15 - j + 3 * b) & 15), y[32 * b + 16 + j], $"block {b} (e = {exponents[b]}) element {16 + j}");
            }
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    [InlineData(2880)] // gpt-oss's embedding width
    [InlineData(4096)]
    public void DotKernelsMatchTheDotOfDequantizedRows(int n)
    {
        var rng = new Random(n);
        for (int rep = 0; rep < 24; rep++)
        {
            // Arbitrary bytes (every code, exponents of weights from 2^-28 to 2^12) and quantizer-made rows.
            byte[] wq = rep % 2 == 0 ? RandomBlocks(n, rng, minExponent: 100, maxExponent: 140)
                : QuantizeRow(GgmlType.MXFP4, Gaussian(n, 300 + rep, rep % 3 == 0 ? 20f : 0.02f, rep % 4 == 1 ? 0.01f : 0f));
            float[] x = Gaussian(n, 400 + rep, rep % 2 == 0 ? 1f : 50f);
            if (rep == 5) Array.Clear(x, 0, Math.Min(n, 64));
            byte[] xq = QuantizeRow(GgmlType.Q8_0, x);
            float[] wd = DequantizeRow(GgmlType.MXFP4, wq, n), xd = DequantizeRow(GgmlType.Q8_0, xq, n);

            // Both factors are exact floats (level · 2^k, q · f16), so their products and this sum are exact in double.
            double exact = 0, norm = 0;
            for (int i = 0; i < n; i++)
            {
                exact += (double)wd[i] * xd[i];
                norm += Math.Abs((double)wd[i] * xd[i]);
            }
            float scalar = VecDot.Dot(GgmlType.MXFP4, wq, xq, n, avx2: false);
            if (n == 32)
                Assert.Equal((float)exact, scalar); // one block: one rounding of the exact integer sum times the scales
            else
            {
                // One FMA a block, each rounding once to within 2^-24 of a partial sum bounded by the norm.
                double bound = (n / 32 + 1) * Math.ScaleB(norm, -24);
                Assert.True(Math.Abs(scalar - exact) <= bound, $"n={n} rep={rep}: {scalar:R} vs dequantized {exact:R} (bound {bound:G3})");
            }
            if (VecDot.IsAvx2Supported)
                AssertSameFloat(scalar, VecDot.Dot(GgmlType.MXFP4, wq, xq, n, avx2: true), $"n={n} rep={rep}: AVX2 against scalar");
        }
    }

    [Fact]
    public void DotKernelsAgreeAtEveryExponent()
    {
        // Subnormal and overflowing scales too (2^-128 · dy rounds, 2^127 · dy can be infinite): same bits either way.
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        var rng = new Random(39);
        for (int rep = 0; rep < 200; rep++)
        {
            int n = 32 * (1 + rep % 9);
            byte[] wq = RandomBlocks(n, rng, minExponent: 0, maxExponent: 255);
            byte[] xq = QuantizeRow(GgmlType.Q8_0, Gaussian(n, rep, rep % 2 == 0 ? 1f : 1e4f));
            AssertSameFloat(VecDot.Dot(GgmlType.MXFP4, wq, xq, n, avx2: false), VecDot.Dot(GgmlType.MXFP4, wq, xq, n, avx2: true), $"n={n} rep={rep}");
        }
    }

    [Fact]
    public void QuantizerTakesTheNearestLevelUnderTheBlocksTopBinade()
    {
        // Blocks of very different magnitudes, one with an outlier that pushes the rest onto few levels.
        const int n = 32 * 64;
        float[] x = new float[n];
        for (int b = 0; b < n / 32; b++)
            Gaussian(32, 500 + b, MathF.Pow(10, b % 7 - 3)).CopyTo(x, 32 * b);
        x[32 * 5 + 7] *= 100;
        byte[] q = QuantizeRow(GgmlType.MXFP4, x);
        float[] y = DequantizeRow(GgmlType.MXFP4, q, n);
        for (int b = 0; b < n / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[32 * b + j]));
            // The spec: shared exponent floor(log2 amax) - 2 (E2M1's largest binade), stored with bias 127.
            int e = (int)MathF.Floor(MathF.Log2(amax)) - 2 + 127;
            Assert.Equal(e, q[b * BlockBytes]);
            double d = Math.ScaleB(1, e - 128); // the unit of the doubled levels 0, 1, 2, 3, 4, 6, 8, 12
            for (int j = 0; j < 32; j++)
            {
                double v = x[32 * b + j], ax = Math.Abs(v), err = Math.Abs(y[32 * b + j] - v);
                if (ax > 12 * d)
                {
                    // Above the largest level (1.5 · 2^floor(log2 amax)) values clip to it.
                    Assert.Equal(Math.CopySign(12 * d, v), (double)y[32 * b + j]);
                    continue;
                }
                double halfStep = ax <= 4 * d ? 0.5 * d : ax <= 8 * d ? d : 2 * d;
                Assert.True(err <= halfStep * (1 + 1e-6), $"block {b} element {j}: {v:R} -> {y[32 * b + j]:R}, error {err:G3} > half a step {halfStep:G3}");
                double nearest = double.MaxValue;
                foreach (double level in new double[] { 0, 1, 2, 3, 4, 6, 8, 12 })
                    nearest = Math.Min(nearest, Math.Min(Math.Abs(level * d - v), Math.Abs(-level * d - v)));
                Assert.True(err <= nearest + Math.ScaleB(ax, -23), $"block {b} element {j}: {v:R} -> {y[32 * b + j]:R} is not the nearest level");
            }
        }
    }

    [Fact]
    public void QuantizerIsExactOnLevelsTimesPowersOfTwo()
    {
        // Any block of E2M1 values times one power of two, whatever its largest magnitude, comes back exactly.
        var rng = new Random(7);
        const int blocks = 200;
        float[] x = new float[32 * blocks];
        for (int b = 0; b < blocks; b++)
        {
            // Magnitudes below E2M1[top], either sign: the block's largest level varies.
            int k = rng.Next(-100, 100), top = 1 + rng.Next(8);
            for (int j = 0; j < 32; j++) x[32 * b + j] = SpecValue(127 + k, rng.Next(top) | (rng.Next(2) << 3));
        }
        float[] y = DequantizeRow(GgmlType.MXFP4, QuantizeRow(GgmlType.MXFP4, x), x.Length);
        for (int i = 0; i < x.Length; i++)
            Assert.True(x[i] == y[i], $"element {i}: {x[i]:R} -> {y[i]:R}");
    }

    [Fact]
    public void QuantizerBreaksTiesTowardTheSmallerLevelAndPacksNibblesAsQ4_0()
    {
        // amax 15.9: e = floor(log2 15.9) + 125 = 128, so the level unit d is 1 and 15.9, 14 clip to 12. Ties go to the
        // first index of ggml's table, which is the smaller magnitude (and +0 for ±0.5).
        float[] x = new float[32];
        (float Value, int Code)[] cases =
        [
            (12, 7), (-12, 15), (5, 4), (-5, 12), (0.5f, 0), (-0.5f, 0), (7, 5), (-7, 13), (10, 6), (-10, 14),
            (2.5f, 2), (0, 0), (-0f, 0), (1, 1), (11, 7), (-11, 15), (15.9f, 7), (-14, 15), (3.4f, 3), (-1.6f, 10),
        ];
        for (int i = 0; i < cases.Length; i++) x[i] = cases[i].Value;
        byte[] q = QuantizeRow(GgmlType.MXFP4, x);
        Assert.Equal(128, q[0]);
        for (int i = 0; i < 32; i++)
        {
            int code = i < 16 ? q[1 + i] & 0xF : q[1 + i - 16] >> 4; // elements 0..15 low nibbles, 16..31 high
            Assert.True(code == (i < cases.Length ? cases[i].Code : 0), $"element {i} ({x[i]}): code {code}");
        }
    }

    [Fact]
    public void ExponentFollowsLog2fJustBelowAPowerOfTwoAndBottomsOutAtZero()
    {
        // log2f(2^20 - 1/16) rounds to 20, so ggml takes e = 145 (not 144) and the value is kept as 8 · 2^17 = 2^20
        // instead of clipping to 12 · 2^16; far below 2^-125 the exponent stops at 0 (ggml's byte conversion of a
        // negative float is undefined there).
        float[] x = new float[64];
        x[3] = MathF.BitDecrement(1 << 20);
        x[32 + 9] = 1e-40f;
        byte[] q = QuantizeRow(GgmlType.MXFP4, x);
        Assert.Equal(145, q[0]);
        Assert.Equal(0, q[BlockBytes]);
        float[] y = DequantizeRow(GgmlType.MXFP4, q, 64);
        Assert.Equal(1 << 20, y[3]);
        Assert.Equal(0f, y[32 + 9]);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void ABlockWithANonFiniteValueDequantizesToInfinity(float bad)
    {
        // MXFP4 has no NaN: a damaged block must not pass for small weights (see Quantize.Mxfp4Ref).
        float[] x = Gaussian(64, 11);
        x[17] = bad;
        byte[] q = QuantizeRow(GgmlType.MXFP4, x);
        float[] y = DequantizeRow(GgmlType.MXFP4, q, 64);
        Assert.All(y.AsSpan(0, 32).ToArray(), v => Assert.Equal(float.PositiveInfinity, v));
        Assert.All(y.AsSpan(32).ToArray(), v => Assert.True(float.IsFinite(v)));
        // Against positive activations the damaged block's dot is infinite too (2^127 · dy · Σ 12 q overflows).
        float[] ones = new float[64];
        Array.Fill(ones, 1f);
        Assert.Equal(float.PositiveInfinity, VecDot.Dot(GgmlType.MXFP4, q, QuantizeRow(GgmlType.Q8_0, ones), 64));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    [InlineData(13)]
    public void MatMulEqualsVecDotPerRow(int nTokens)
    {
        const int rows = 37, cols = 2880;
        using var nw = new NativeWeights(GgmlType.MXFP4, rows, cols, seed: 21);
        float[] x = Gaussian(nTokens * cols, 22);
        using var pool = new KernelPool(2);
        float[] y = MatMulTests.Multiply(pool, nw.Matrix, x, nTokens);
        for (int t = 0; t < nTokens; t++)
        {
            byte[] xq = QuantizeRow(GgmlType.Q8_0, x.AsSpan(t * cols, cols));
            for (int r = 0; r < rows; r++)
                AssertSameFloat(VecDot.Dot(GgmlType.MXFP4, nw.Matrix.Row(r), xq, cols), y[t * rows + r], $"token {t} row {r}");
        }
    }

    /// <summary>
    /// The interleaved copy (eight rows side by side; paired or not) on every SIMD path this machine has (AVX2, AVX-VNNI,
    /// AVX-512, each forced) gives, output by output, the bits of the plain matrix through MatMul and of the scalar row
    /// kernel <see cref="VecDotScalar.Mxfp4"/>: 1, 4, 8 and odd token counts, row counts that leave rows past the last
    /// group (and a lone group past the last pair), gpt-oss's 2880 x 2880 and a 768 x 256 expert-like shape.
    /// </summary>
    [Theory]
    [InlineData(2880, 2880, 1)]
    [InlineData(2880, 2880, 4)]
    [InlineData(2880, 2880, 8)]
    [InlineData(2880, 2880, 13)]
    [InlineData(768, 256, 1)]
    [InlineData(768, 256, 8)]
    [InlineData(768, 256, 11)]
    [InlineData(2883, 96, 9)] // 360 groups (180 pairs) and three rows past them
    [InlineData(43, 2880, 17)] // five groups: two pairs and a lone one, three rows past; 8 + 8 + 1 tokens
    public void InterleavedKernelsGiveThePlainKernelsBitsOnEveryPath(int rows, int cols, int nTokens)
    {
        using var plain = new NativeWeights(GgmlType.MXFP4, rows, cols, seed: 23);
        float[] x = Gaussian(nTokens * cols, 24);
        using var pool = new KernelPool(2);
        float[] want = MatMulTests.Multiply(pool, plain.Matrix, x, nTokens);
        ScalarRowsAgree(plain.Matrix, x, nTokens, want, rows > 100 ? 7 : 1);
        foreach (bool paired in new[] { false, true })
        {
            using var interleaved = new NativeWeights(GgmlType.MXFP4, rows, cols, seed: 23, interleave: true, pairGroups: paired);
            Assert.Equal(rows / 8, interleaved.Matrix.Interleaved!.Groups);
            InterleavedRowsTests.ForEachKernelPath(path => MatMulTests.AssertBitsEqual(want, MatMulTests.Multiply(pool, interleaved.Matrix, x, nTokens),
                $"MXFP4 {rows}x{cols}, {nTokens} tokens, {path}, {(paired ? "paired" : "plain")} copy"));
        }
    }

    /// <summary>
    /// Every exponent byte, 0 and 1 (the subnormal scales 2^-128 and 2^-127, whose products with dy round) through 255
    /// (2^127), against activations small enough that nothing overflows: the interleaved kernels widen the eight or
    /// sixteen rows' exponents to exactly <see cref="BlockLayouts.E8M0Half"/>'s floats, so dx·dy rounds as the scalar
    /// kernel's does.
    /// </summary>
    [Fact]
    public void InterleavedKernelsTakeEveryExponentAsTheScalarKernelDoes()
    {
        const int rows = 40, cols = 256, nTokens = 9;
        var rng = new Random(25);
        byte[] bytes = RandomBlocks(rows * cols, rng, 0, 255);
        for (int b = 0; b < 16; b++) bytes[b * BlockBytes] = (byte)(b % 2); // rows 0 and 1: e = 0 and 1 only
        float[] x = Gaussian(nTokens * cols, 26, 1e-6f);
        using var plain = new NativeWeights(GgmlType.MXFP4, rows, cols, bytes, interleave: false);
        using var pool = new KernelPool(1);
        float[] want = MatMulTests.Multiply(pool, plain.Matrix, x, nTokens);
        Assert.All(want, v => Assert.True(float.IsFinite(v)));
        ScalarRowsAgree(plain.Matrix, x, nTokens, want, 1);
        foreach (bool paired in new[] { false, true })
        {
            using var interleaved = new NativeWeights(GgmlType.MXFP4, rows, cols, bytes, interleave: false);
            using var copy = InterleavedRows.Create(interleaved.Matrix, paired);
            var m = interleaved.Matrix with { Interleaved = copy };
            InterleavedRowsTests.ForEachKernelPath(path => MatMulTests.AssertBitsEqual(want, MatMulTests.Multiply(pool, m, x, nTokens),
                $"MXFP4 every exponent, {path}, {(paired ? "paired" : "plain")} copy"));
        }
    }

    /// <summary>Every <paramref name="rowStep"/>-th row of <paramref name="y"/> against the scalar row kernel.</summary>
    private static void ScalarRowsAgree(in WeightMatrix w, float[] x, int nTokens, float[] y, int rowStep)
    {
        for (int t = 0; t < nTokens; t++)
        {
            byte[] xq = QuantizeRow(GgmlType.Q8_0, x.AsSpan(t * w.Cols, w.Cols));
            for (int r = 0; r < w.Rows; r += rowStep)
                AssertSameFloat(VecDot.Dot(GgmlType.MXFP4, w.Row(r), xq, w.Cols, avx2: false), y[t * w.Rows + r], $"token {t} row {r}: MatMul vs scalar");
        }
    }

    /// <summary>Random nibbles with exponent bytes drawn from [<paramref name="minExponent"/>, <paramref name="maxExponent"/>].</summary>
    private static byte[] RandomBlocks(int n, Random rng, int minExponent, int maxExponent)
    {
        byte[] q = new byte[n / 32 * BlockBytes];
        rng.NextBytes(q);
        for (int b = 0; b < n / 32; b++) q[b * BlockBytes] = (byte)rng.Next(minExponent, maxExponent + 1);
        return q;
    }

    private static void AssertSameFloat(float want, float got, string what)
    {
        if (BitConverter.SingleToInt32Bits(want) != BitConverter.SingleToInt32Bits(got))
            Assert.Fail($"{what}: {got:R} != {want:R}");
    }
}
