using System.Runtime.Intrinsics;
using KvSharp.Models;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.MatMulTests;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The interleaved Q4_0 kernels convert block scales in four instructions that are exact for finite halves only
/// (<see cref="VecDotAvx2Interleaved.Q4Scales"/>), and take the high nibbles down by GFNI where the CPU has it
/// (<see cref="VecDotAvx512Interleaved.Q4HighNibbles"/>): both must give the exact values, and a matrix with an infinite
/// or NaN scale must stay with the row kernels.
/// </summary>
[Collection(nameof(KernelSwitchCollection))]
public unsafe class InterleavedQ4_0ScalesTests
{
    [Fact]
    public void ScaleConversionIsExactForEveryFiniteHalf()
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        ushort* halves = stackalloc ushort[8];
        float* got = stackalloc float[8];
        int checkedCount = 0;
        for (int bits = 0; bits < 65536; bits += 8)
        {
            for (int i = 0; i < 8; i++) halves[i] = (ushort)(bits + i);
            VecDotAvx2Interleaved.Q4Scales((byte*)halves).Store(got);
            for (int i = 0; i < 8; i++)
            {
                Half h = BitConverter.UInt16BitsToHalf(halves[i]);
                if (!Half.IsFinite(h)) continue;
                Assert.True(BitConverter.SingleToInt32Bits((float)h) == BitConverter.SingleToInt32Bits(got[i]),
                    $"half 0x{halves[i]:X4}: want {(float)h}, got {got[i]}");
                checkedCount++;
            }
        }
        Assert.Equal(65536 - 2 * 1024, checkedCount);
    }

    [Fact]
    public void HighNibblesAreEveryBytesTopFourBits()
    {
        Assert.SkipUnless(KernelPaths.IsAvailable(KernelPath.Avx512), "no AVX-512 path on this machine");
        byte* bytes = stackalloc byte[256];
        for (int i = 0; i < 256; i++) bytes[i] = (byte)i;
        for (int o = 0; o < 256; o += 64)
        {
            Vector512<byte> got = VecDotAvx512Interleaved.Q4HighNibbles(Vector512.Load(bytes + o));
            for (int i = 0; i < 64; i++) Assert.Equal((byte)((o + i) >> 4), got[i]);
        }
    }

    /// <summary>Scales at the edges of the half range: subnormals, zeros of both signs, the largest and smallest normals.</summary>
    private static readonly Half[] EdgeScales =
    [
        BitConverter.UInt16BitsToHalf(0x0001), BitConverter.UInt16BitsToHalf(0x83FF), (Half)0f, BitConverter.UInt16BitsToHalf(0x8000),
        Half.MaxValue, Half.MinValue, BitConverter.UInt16BitsToHalf(0x0400), (Half)(-0.0123f), (Half)1f, (Half)(-3.5f),
    ];

    [Fact]
    public void EdgeScalesGiveTheRowKernelsBits()
    {
        int rows = 24, cols = 128, nTokens = 9; // AVX-512: a pair of groups and a lone one; eight tokens, then one
        byte[] bytes = RandomQ4_0(rows, cols, seed: 3);
        for (int b = 0; b < rows * cols / 32; b++)
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 18, 2), EdgeScales[b % EdgeScales.Length]);
        using var interleaved = new NativeWeights(GgmlType.Q4_0, rows, cols, bytes, interleave: true);
        using var plain = new NativeWeights(GgmlType.Q4_0, rows, cols, bytes, interleave: false);
        float[] x = Gaussian(nTokens * cols, 5);
        using var pool = new KernelPool(1);
        InterleavedRowsTests.ForEachKernelPath(kernels =>
        {
            foreach (int n in new[] { 1, 4, nTokens })
                AssertBitsEqual(Multiply(pool, plain.Matrix, x.AsSpan(0, n * cols).ToArray(), n),
                    Multiply(pool, interleaved.Matrix, x.AsSpan(0, n * cols).ToArray(), n), $"Q4_0 edge scales ({kernels}), {n} tokens");
        });
    }

    [Theory]
    [InlineData((ushort)0x7C00)] // +infinity
    [InlineData((ushort)0xFC00)] // -infinity
    [InlineData((ushort)0x7E01)] // NaN
    public void MatrixWithNonFiniteScaleStaysWithTheRowKernels(ushort scale)
    {
        int rows = 16, cols = 64;
        byte[] bytes = RandomQ4_0(rows, cols, seed: 4);
        BitConverter.TryWriteBytes(bytes.AsSpan(11 * 2 * 18 + 18, 2), scale); // row 11, block 1
        using var plain = new NativeWeights(GgmlType.Q4_0, rows, cols, bytes, interleave: false);
        Assert.False(InterleavedRows.CanInterleave(plain.Matrix));
        var e = Assert.Throws<ArgumentException>(() => InterleavedRows.Create(plain.Matrix));
        Assert.Contains("row 11, block 1", e.Message);
        using var copies = new InterleavedCopies((_, _) => { });
        Assert.Null(copies.Interleave(plain.Matrix).Interleaved);
        // The finite matrix next to it is interleaved as before.
        BitConverter.TryWriteBytes(bytes.AsSpan(11 * 2 * 18 + 18, 2), (Half)0.5f);
        using var finite = new NativeWeights(GgmlType.Q4_0, rows, cols, bytes, interleave: false);
        Assert.True(InterleavedRows.CanInterleave(finite.Matrix));
        Assert.NotNull(copies.Interleave(finite.Matrix).Interleaved);
    }

    private static byte[] RandomQ4_0(int rows, int cols, int seed)
    {
        var bytes = new byte[rows * cols / 32 * 18];
        new Random(seed).NextBytes(bytes);
        for (int b = 0; b < bytes.Length; b += 18) BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)0.01f);
        return bytes;
    }
}
