using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The AVX-512 pair kernels widen sixteen rows' half block scales in one 512-bit pass of their own; the AVX2 kernels
/// widen eight at a time. Every finite half (subnormals, signed zeros, the largest values) as a Q8_0 block scale must
/// give the same products on both paths, for one, four and eight tokens (each pair kernel).
/// </summary>
[Collection(nameof(KernelSwitchCollection))]
public class PairKernelScalesTests
{
    [Fact]
    public void EveryFiniteHalfScaleGivesTheAvx2Bits()
    {
        Assert.SkipUnless(KernelPaths.IsAvailable(KernelPath.Avx512), "no AVX-512 path on this machine");
        // 2 x 31 x 1024 finite halves (exponent field below 31), one per block: 32 rows (two pairs of groups) x 1984 blocks.
        ushort[] halves = [.. Enumerable.Range(0, 65536).Where(h => (h & 0x7c00) != 0x7c00).Select(h => (ushort)h)];
        const int Rows = 32;
        int blocks = halves.Length / Rows, cols = blocks * BlockLayouts.QK;
        var bytes = new byte[Rows * blocks * BlockLayouts.Q8_0Bytes];
        var rng = new Random(18);
        // Rows take the halves in a shuffled order, so neighbouring lanes and both groups of a pair see every kind.
        int[] order = [.. Enumerable.Range(0, halves.Length).OrderBy(_ => rng.Next())];
        for (int i = 0; i < halves.Length; i++)
        {
            int at = i * BlockLayouts.Q8_0Bytes;
            BitConverter.TryWriteBytes(bytes.AsSpan(at, 2), halves[order[i]]);
            for (int j = 0; j < BlockLayouts.QK; j++) bytes[at + 2 + j] = (byte)(sbyte)rng.Next(-127, 128);
        }
        using var nw = new NativeWeights(GgmlType.Q8_0, Rows, cols, bytes, interleave: true);
        float[] x = Gaussian(8 * cols, 19, 1e-3f);
        using var pool = new KernelPool(1);
        foreach (int tokens in new[] { 1, 4, 8 })
        {
            float[] want, got;
            using (KernelPaths.Force(KernelPath.Avx2)) want = MatMulTests.Multiply(pool, nw.Matrix, x, tokens);
            using (KernelPaths.Force(KernelPath.Avx512)) got = MatMulTests.Multiply(pool, nw.Matrix, x, tokens);
            MatMulTests.AssertBitsEqual(want, got, $"Q8_0 every finite half scale, {tokens} token(s), AVX-512 vs AVX2");
        }
    }
}
