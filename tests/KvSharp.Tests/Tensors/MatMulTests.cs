using System.Runtime.InteropServices;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>A random quantized matrix in native memory, as a model file would provide it.</summary>
internal sealed unsafe class NativeWeights : IDisposable
{
    public readonly WeightMatrix Matrix;
    private byte* _data;

    /// <summary>Wraps bytes the caller filled (<paramref name="rows"/> rows of <paramref name="type"/>).</summary>
    public NativeWeights(GgmlType type, int rows, int cols, ReadOnlySpan<byte> bytes, bool interleave)
    {
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, bytes.Length), 64);
        bytes.CopyTo(new Span<byte>(_data, bytes.Length));
        Matrix = new WeightMatrix(type, rows, cols, _data);
        if (interleave) Matrix = Matrix with { Interleaved = InterleavedRows.Create(Matrix) };
    }

    /// <param name="pairGroups">With <paramref name="interleave"/>: whether the copy pairs its groups (null: as a model load would, <see cref="InterleavedRows.PairsGroupsByDefault"/>).</param>
    public NativeWeights(GgmlType type, int rows, int cols, int seed, bool interleave = false, bool? pairGroups = null)
    {
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * rowBytes), 64);
        for (int r = 0; r < rows; r++)
        {
            float[] w = Gaussian(cols, seed * 7919 + r, 1f / MathF.Sqrt(cols));
            Quantize.Row(type, w, new Span<byte>(_data + r * rowBytes, (int)rowBytes));
        }
        Matrix = new WeightMatrix(type, rows, cols, _data);
        if (interleave) Matrix = Matrix with { Interleaved = InterleavedRows.Create(Matrix, pairGroups ?? InterleavedRows.PairsGroupsByDefault(type)) };
    }

    public void Dispose()
    {
        Matrix.Interleaved?.Dispose();
        NativeMemory.AlignedFree(_data);
        _data = null;
    }
}

[CollectionDefinition(nameof(KernelSwitchCollection), DisableParallelization = true)]
public sealed class KernelSwitchCollection;

[Collection(nameof(KernelSwitchCollection))]
public class MatMulTests
{
    private static int ColsFor(GgmlType type) => Math.Max(256, 2 * Granule(type));

    internal static float[] Multiply(KernelPool pool, in WeightMatrix w, float[] x, int nTokens)
    {
        var y = new float[nTokens * w.Rows];
        new MatMul(pool).Multiply(w, x, nTokens, y);
        return y;
    }

    internal static void AssertBitsEqual(ReadOnlySpan<float> want, ReadOnlySpan<float> got, string what)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]))
                Assert.Fail($"{what}: element {i}: {want[i]:R} != {got[i]:R}");
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void EqualsNaiveLoopOverVecDot(GgmlType type)
    {
        int cols = ColsFor(type), rows = 37, nTokens = 11;
        using var nw = new NativeWeights(type, rows, cols, 1);
        float[] x = Gaussian(nTokens * cols, 2);
        using var pool = new KernelPool(2);
        float[] y = Multiply(pool, nw.Matrix, x, nTokens);
        GgmlType at = GgmlTypes.VecDotType(type);
        for (int t = 0; t < nTokens; t++)
        {
            byte[] xq = QuantizeRow(at, x.AsSpan(t * cols, cols));
            for (int r = 0; r < rows; r++)
            {
                float want = VecDot.Dot(type, nw.Matrix.Row(r), xq, cols);
                Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(y[t * rows + r]));
            }
        }
    }

    /// <summary>
    /// A one-token product gives each thread one contiguous share of the rows (tiles claimed in turn made the threads'
    /// prefetchers read each other's rows); products over more tokens keep tiles small enough to stay in L2.
    /// </summary>
    [Fact]
    public void OneTokenProductsGiveEachThreadOneContiguousShare()
    {
        using var pool = new KernelPool(2);
        var matmul = new MatMul(pool);
        Assert.Equal(384, matmul.RowTile(768, nTokens: 1));
        Assert.Equal(16000, matmul.RowTile(32000, nTokens: 1));
        Assert.Equal(35, matmul.RowTile(69, nTokens: 1));
        Assert.Equal(64, matmul.RowTile(768, nTokens: 2));
        Assert.Equal(matmul.RowTile(32000), matmul.RowTile(32000, nTokens: 8));
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void IsBatchInvariant(GgmlType type)
    {
        int cols = ColsFor(type), rows = 70;
        using var nw = new NativeWeights(type, rows, cols, 3);
        float[] x = Gaussian(64 * cols, 4);
        using var pool1 = new KernelPool(1);
        using var pool2 = new KernelPool(2);
        float[] reference = Multiply(pool2, nw.Matrix, x, 64);
        AssertBitsEqual(reference, Multiply(pool1, nw.Matrix, x, 64), $"{type}: 64 tokens, 1 thread vs 2");

        // Each token alone (decode), and inside batches of 7 with unrelated neighbours at varying positions.
        float[] noise = Gaussian(7 * cols, 5, 3f);
        foreach (var pool in new[] { pool1, pool2 })
        {
            for (int t = 0; t < 64; t++)
            {
                float[] one = Multiply(pool, nw.Matrix, x.AsSpan(t * cols, cols).ToArray(), 1);
                AssertBitsEqual(reference.AsSpan(t * rows, rows), one, $"{type}: token {t} alone ({pool.Threads} threads)");

                float[] batch = (float[])noise.Clone();
                int pos = t % 7;
                x.AsSpan(t * cols, cols).CopyTo(batch.AsSpan(pos * cols));
                float[] y7 = Multiply(pool, nw.Matrix, batch, 7);
                AssertBitsEqual(reference.AsSpan(t * rows, rows), y7.AsSpan(pos * rows, rows), $"{type}: token {t} at {pos} of 7 ({pool.Threads} threads)");
            }
        }
    }

    [Theory]
    [InlineData(GgmlType.F16, 172)]
    [InlineData(GgmlType.BF16, 172)]
    [InlineData(GgmlType.F32, 100)]
    [InlineData(GgmlType.F16, 33)]
    public void OddWidthsAreBatchInvariantToo(GgmlType type, int cols)
    {
        // Rows whose length is not a multiple of the 32-element SIMD step (stories260K's 172-wide ffn_down is F16).
        int rows = 19;
        using var nw = new NativeWeights(type, rows, cols, 12);
        float[] x = Gaussian(13 * cols, 13);
        using var pool = new KernelPool(2);
        float[] all = Multiply(pool, nw.Matrix, x, 13);
        for (int t = 0; t < 13; t++)
            AssertBitsEqual(all.AsSpan(t * rows, rows), Multiply(pool, nw.Matrix, x.AsSpan(t * cols, cols).ToArray(), 1), $"{type} cols {cols} token {t}");
    }

    [Theory]
    [InlineData(GgmlType.F32, 2050)]
    [InlineData(GgmlType.F32, 1100)]
    [InlineData(GgmlType.F32, 1024)]
    [InlineData(GgmlType.F16, 2050)]
    public void WideRowsEqualSingleTokenDots(GgmlType type, int cols)
    {
        // Rows wider than the multi-token kernels' column blocks, with and without a tail past the last 32.
        int rows = 9, nTokens = 10;
        using var nw = new NativeWeights(type, rows, cols, 21);
        float[] x = Gaussian(nTokens * cols, 22);
        using var pool = new KernelPool(2);
        float[] y = Multiply(pool, nw.Matrix, x, nTokens);
        for (int t = 0; t < nTokens; t++)
            AssertBitsEqual(y.AsSpan(t * rows, rows), Multiply(pool, nw.Matrix, x.AsSpan(t * cols, cols).ToArray(), 1), $"{type} cols {cols} token {t}");
    }

    /// <summary>
    /// F16 and BF16 over several tokens on every path (the SIMD paths widen an item's rows once and take them by four
    /// tokens, four rows at a time on AVX-512 and three on AVX2): the bits of one token at a time, with rows short of a
    /// kernel's rows, tokens short of a four, rows past a column block, and tails past the last 32 columns.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F16, 19, 33, 13)]
    [InlineData(GgmlType.F16, 19, 172, 9)]
    [InlineData(GgmlType.F16, 37, 2050, 11)]
    [InlineData(GgmlType.F16, 8, 1024, 4)]
    [InlineData(GgmlType.BF16, 19, 33, 13)]
    [InlineData(GgmlType.BF16, 37, 2050, 11)]
    [InlineData(GgmlType.BF16, 8, 1024, 4)]
    public void HalfProductsGiveTheSameBitsOnEveryPath(GgmlType type, int rows, int cols, int nTokens)
    {
        using var nw = new NativeWeights(type, rows, cols, 31);
        float[] x = Gaussian(nTokens * cols, 32);
        using var pool = new KernelPool(2);
        float[] reference;
        using (KernelPaths.Force(KernelPath.Scalar)) reference = Multiply(pool, nw.Matrix, x, nTokens);
        foreach (var path in KernelPaths.Available)
        {
            using var _ = KernelPaths.Force(path);
            AssertBitsEqual(reference, Multiply(pool, nw.Matrix, x, nTokens), $"{type} {rows}x{cols}, {nTokens} tokens on {KernelPaths.Name(path)}");
            for (int t = 0; t < nTokens; t++)
                AssertBitsEqual(reference.AsSpan(t * rows, rows), Multiply(pool, nw.Matrix, x.AsSpan(t * cols, cols).ToArray(), 1),
                    $"{type} token {t} alone on {KernelPaths.Name(path)}");
        }
    }

    /// <summary>
    /// F16 rows holding an infinity, a NaN or the largest finite half, alone and beside ordinary rows: every path gives
    /// the portable kernel's bits, one token and several (the AVX-512 one-token kernel widens only finite halves and
    /// must hand such a row to the exact widening; a missed one would come out finite).
    /// </summary>
    [Theory]
    [InlineData((ushort)0x7c00, 1)] // +infinity
    [InlineData((ushort)0xfc00, 1)] // -infinity
    [InlineData((ushort)0x7e01, 1)] // NaN
    [InlineData((ushort)0x7bff, 1)] // 65504, the largest finite half: must not be taken for one
    [InlineData((ushort)0x7c00, 6)]
    [InlineData((ushort)0x7e01, 6)]
    public unsafe void F16RowsWithInfinityOrNaNGiveTheSameBitsOnEveryPath(ushort special, int nTokens)
    {
        int rows = 7, cols = 96;
        using var nw = new NativeWeights(GgmlType.F16, rows, cols, 41);
        // Row 2 holds the value in its first 32 columns, row 5 in its second 16 (the other half of a 32-column step).
        ((ushort*)nw.Matrix.Data)[2 * cols + 3] = special;
        ((ushort*)nw.Matrix.Data)[5 * cols + 32 + 20] = special;
        float[] x = Gaussian(nTokens * cols, 42);
        using var pool = new KernelPool(2);
        float[] reference;
        using (KernelPaths.Force(KernelPath.Scalar)) reference = Multiply(pool, nw.Matrix, x, nTokens);
        bool finite = (special & 0x7c00) != 0x7c00;
        Assert.Equal(finite, float.IsFinite(reference[2]));
        Assert.True(float.IsFinite(reference[1]));
        foreach (var path in KernelPaths.Available)
        {
            using var _ = KernelPaths.Force(path);
            AssertBitsEqual(reference, Multiply(pool, nw.Matrix, x, nTokens), $"{special:x4}, {nTokens} tokens on {KernelPaths.Name(path)}");
        }
    }

    [Theory]
    [MemberData(nameof(WeightTypeData), MemberType = typeof(TensorTestData))]
    public void PortableKernelsGiveTheSameMatMul(GgmlType type)
    {
        Assert.SkipUnless(VecDot.IsAvx2Supported, "no AVX2/FMA on this machine");
        int cols = ColsFor(type), rows = 33;
        using var nw = new NativeWeights(type, rows, cols, 6);
        float[] x = Gaussian(9 * cols, 7);
        using var pool = new KernelPool(2);
        float[] fast = Multiply(pool, nw.Matrix, x, 9);
        using (KernelPaths.Force(KernelPath.Scalar))
            AssertBitsEqual(fast, Multiply(pool, nw.Matrix, x, 9), $"{type}: AVX2 vs portable");
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 1)]
    [InlineData(GgmlType.Q8_0, 16)]
    [InlineData(GgmlType.Q4_K, 5)]
    [InlineData(GgmlType.F16, 3)]
    [InlineData(GgmlType.F16, 8)]
    [InlineData(GgmlType.BF16, 8)]
    public void WarmMultiplyDoesNotAllocate(GgmlType type, int nTokens)
    {
        int cols = ColsFor(type), rows = 128;
        using var nw = new NativeWeights(type, rows, cols, 8);
        float[] x = Gaussian(nTokens * cols, 9);
        float[] y = new float[nTokens * rows];
        using var pool = new KernelPool(2);
        var mm = new MatMul(pool);
        for (int i = 0; i < 5; i++) mm.Multiply(nw.Matrix, x, nTokens, y);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) mm.Multiply(nw.Matrix, x, nTokens, y);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, GgmlType.Q4_K, GgmlType.Q6_K, 1)]
    [InlineData(GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_K, 9)]
    [InlineData(GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.F16, 6)]
    [InlineData(GgmlType.Q5_1, GgmlType.Q5_0, GgmlType.Q8_0, 17)]
    [InlineData(GgmlType.F32, GgmlType.BF16, GgmlType.Q5_K, 64)]
    public void SharedInputOverloadsEqualSeparateMultiplies(GgmlType ta, GgmlType tb, GgmlType tc, int nTokens)
    {
        const int cols = 512;
        using var a = new NativeWeights(ta, 40, cols, 21);
        using var b = new NativeWeights(tb, 8, cols, 22);
        using var c = new NativeWeights(tc, 65, cols, 23);
        float[] x = Gaussian(nTokens * cols, 24);
        using var pool = new KernelPool(2);
        var mm = new MatMul(pool);
        float[] ya = new float[nTokens * 40], yb = new float[nTokens * 8], yc = new float[nTokens * 65];
        mm.Multiply(a.Matrix, ya, b.Matrix, yb, c.Matrix, yc, x, nTokens);
        AssertBitsEqual(Multiply(pool, a.Matrix, x, nTokens), ya, "a of three");
        AssertBitsEqual(Multiply(pool, b.Matrix, x, nTokens), yb, "b of three");
        AssertBitsEqual(Multiply(pool, c.Matrix, x, nTokens), yc, "c of three");
        Array.Clear(ya);
        Array.Clear(yc);
        mm.Multiply(c.Matrix, yc, a.Matrix, ya, x, nTokens);
        AssertBitsEqual(Multiply(pool, a.Matrix, x, nTokens), ya, "a of two");
        AssertBitsEqual(Multiply(pool, c.Matrix, x, nTokens), yc, "c of two");

        for (int i = 0; i < 3; i++) mm.Multiply(a.Matrix, ya, b.Matrix, yb, c.Matrix, yc, x, nTokens);
        // The fewest bytes any of five warm calls allocated: an allocation every call makes shows in each, while a
        // one-off of the runtime's (7,896 bytes once, in a loaded full-suite run with .NET's AVX-512 off, not seen again
        // in reruns) does not fail the test.
        long fewest = long.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            mm.Multiply(a.Matrix, ya, b.Matrix, yb, c.Matrix, yc, x, nTokens);
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, fewest);
    }

    [Fact]
    public void SharedInputRequiresEqualWidths()
    {
        using var a = new NativeWeights(GgmlType.Q8_0, 4, 64, 1);
        using var b = new NativeWeights(GgmlType.Q8_0, 4, 96, 2);
        using var pool = new KernelPool(1);
        var ex = Assert.Throws<ArgumentException>(() => new MatMul(pool).Multiply(a.Matrix, new float[4], b.Matrix, new float[4], new float[96], 1));
        Assert.Contains("columns", ex.Message);
    }

    [Fact]
    public unsafe void WeightMatrixExposesRowsWithoutCopying()
    {
        using var nw = new NativeWeights(GgmlType.Q8_0, 3, 64, 10);
        var w = nw.Matrix;
        Assert.Equal(68, w.RowBytes);
        fixed (byte* r1 = w.Row(1)) Assert.True(r1 == w.Data + 68);
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Row(3));
        Assert.Throws<ArgumentException>(() => new WeightMatrix(GgmlType.Q4_K, 1, 100, w.Data));
    }

    [Fact]
    public void RejectsShortBuffers()
    {
        using var nw = new NativeWeights(GgmlType.Q8_0, 4, 64, 11);
        using var pool = new KernelPool(1);
        var mm = new MatMul(pool);
        Assert.Throws<ArgumentException>(() => mm.Multiply(nw.Matrix, new float[127], 2, new float[8]));
        Assert.Throws<ArgumentException>(() => mm.Multiply(nw.Matrix, new float[128], 2, new float[7]));
    }
}
