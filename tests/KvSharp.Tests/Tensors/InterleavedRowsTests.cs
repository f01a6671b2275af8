using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;
using static KvSharp.Tests.Tensors.MatMulTests;
using static KvSharp.Tests.Tensors.TensorTestData;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The interleaved Q8_0 / Q4_0 / IQ4_NL / MXFP4 / Q4_1 / Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K / F32 kernels (eight rows per group, four tokens or one; F32 also three groups by two tokens) must give exactly the bits of the
/// single-row kernels, AVX2 and portable, whatever the row count (tail rows outside any group), token count and threads.
/// </summary>
[Collection(nameof(KernelSwitchCollection))]
public class InterleavedRowsTests
{
    public static TheoryData<GgmlType, int, int, int> Shapes() => new()
    {
        { GgmlType.Q8_0, 8, 256, 1 },
        { GgmlType.Q8_0, 37, 96, 9 },
        { GgmlType.Q8_0, 70, 256, 16 },
        { GgmlType.Q8_0, 24, 64, 13 }, // AVX-512: a pair of groups and a lone one; eight tokens, four, one
        { GgmlType.Q4_0, 8, 256, 4 },
        { GgmlType.Q4_0, 37, 96, 9 },
        { GgmlType.Q4_0, 70, 256, 13 },
        { GgmlType.Q4_0, 24, 64, 13 },
        { GgmlType.Q4_0, 16, 224, 5 }, // seven blocks: the one-token kernel's four-block step, then three alone
        { GgmlType.IQ4_NL, 8, 256, 4 },
        { GgmlType.IQ4_NL, 37, 96, 9 },
        { GgmlType.IQ4_NL, 70, 224, 13 },
        { GgmlType.IQ4_NL, 24, 64, 13 }, // AVX-512: a pair of groups and a lone one; eight tokens, four, one
        { GgmlType.IQ4_NL, 16, 32, 5 }, // one block
        { GgmlType.MXFP4, 8, 256, 4 },
        { GgmlType.MXFP4, 37, 96, 9 },
        { GgmlType.MXFP4, 70, 224, 13 },
        { GgmlType.MXFP4, 24, 64, 13 }, // AVX-512: a pair of groups and a lone one; eight tokens, four, one
        { GgmlType.MXFP4, 16, 32, 5 }, // one block
        { GgmlType.Q4_1, 8, 256, 4 },
        { GgmlType.Q4_1, 37, 96, 9 },
        { GgmlType.Q4_1, 70, 224, 13 },
        { GgmlType.Q4_1, 16, 224, 16 }, // eight tokens twice; seven blocks: the one-token kernel's four-block step, then three
        { GgmlType.Q5_0, 8, 256, 4 },
        { GgmlType.Q5_0, 37, 96, 9 },
        { GgmlType.Q5_0, 16, 224, 16 },
        { GgmlType.Q5_1, 8, 256, 4 },
        { GgmlType.Q5_1, 37, 96, 9 },
        { GgmlType.Q5_1, 16, 224, 16 },
        { GgmlType.Q4_K, 8, 256, 4 },
        { GgmlType.Q4_K, 37, 512, 9 },
        { GgmlType.Q4_K, 70, 768, 16 },
        { GgmlType.Q5_K, 8, 256, 4 },
        { GgmlType.Q5_K, 37, 512, 9 },
        { GgmlType.Q5_K, 70, 768, 16 },
        { GgmlType.Q6_K, 8, 256, 4 },
        { GgmlType.Q6_K, 37, 512, 9 },
        { GgmlType.Q6_K, 70, 768, 16 },
        { GgmlType.F32, 8, 64, 5 },
        { GgmlType.F32, 37, 33, 9 },
        { GgmlType.F32, 70, 100, 16 },
        { GgmlType.F32, 300, 65, 3 }, // row tiles of five groups: decode runs four at once, then one
        { GgmlType.F32, 40, 33, 7 }, // AVX2: a triple of groups two tokens at a time, the seventh alone, then two groups
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void EqualsSingleRowKernelsBitForBit(GgmlType type, int rows, int cols, int nTokens)
    {
        using var interleaved = new NativeWeights(type, rows, cols, 31, interleave: true);
        using var plain = new NativeWeights(type, rows, cols, 31);
        Assert.Equal(rows / 8, interleaved.Matrix.Interleaved!.Groups);
        float[] x = Gaussian(nTokens * cols, 32);
        ForEachKernelPath(kernels =>
        {
            foreach (int threads in new[] { 1, 2 })
            {
                using var pool = new KernelPool(threads);
                float[] y = Multiply(pool, interleaved.Matrix, x, nTokens);
                AssertBitsEqual(Multiply(pool, plain.Matrix, x, nTokens), y, $"{type} {rows}x{cols} ({kernels}): interleaved vs plain, {threads} threads");
                for (int t = 0; t < nTokens; t++)
                {
                    byte[] xq = QuantizeRow(GgmlTypes.VecDotType(type), x.AsSpan(t * cols, cols));
                    for (int r = 0; r < rows; r++)
                    {
                        float scalar = VecDot.Dot(type, plain.Matrix.Row(r), xq, cols, avx2: false);
                        Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(y[t * rows + r]));
                        if (VecDot.IsAvx2Supported)
                            Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(VecDot.Dot(type, plain.Matrix.Row(r), xq, cols, avx2: true)));
                    }
                    float[] alone = Multiply(pool, interleaved.Matrix, x.AsSpan(t * cols, cols).ToArray(), 1);
                    AssertBitsEqual(y.AsSpan(t * rows, rows), alone, $"{type} ({kernels}): token {t} alone vs in a batch of {nTokens}");
                }
            }
        });
    }

    /// <summary>
    /// A copy whose pairs of groups are one stream (<see cref="InterleavedRows.PairedGroups"/>: Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4)
    /// gives the plain copy's bits on every path: the AVX-512 pair kernels read it as sixteen-row vectors, the AVX2 and
    /// AVX-VNNI group kernels each half of a pair; a lone last group and the rows past the groups stay as they were.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, 8, 256, 4)] // one group: nothing to pair
    [InlineData(GgmlType.Q4_0, 24, 64, 13)] // a pair and a lone group; eight tokens, four, one
    [InlineData(GgmlType.Q4_0, 37, 96, 9)] // two pairs and five rows past them
    [InlineData(GgmlType.Q4_0, 70, 224, 16)] // four pairs, six rows past them; seven blocks (the one-token kernel's four, then three)
    [InlineData(GgmlType.Q4_1, 24, 64, 13)]
    [InlineData(GgmlType.Q4_1, 70, 224, 16)]
    [InlineData(GgmlType.Q5_0, 24, 64, 13)]
    [InlineData(GgmlType.Q5_0, 70, 224, 16)]
    [InlineData(GgmlType.Q5_1, 24, 64, 13)]
    [InlineData(GgmlType.Q5_1, 70, 224, 16)]
    [InlineData(GgmlType.IQ4_NL, 24, 64, 13)]
    [InlineData(GgmlType.IQ4_NL, 70, 224, 16)]
    [InlineData(GgmlType.MXFP4, 24, 64, 13)]
    [InlineData(GgmlType.MXFP4, 70, 224, 16)]
    public void PairedCopiesGiveThePlainCopysBitsOnEveryPath(GgmlType type, int rows, int cols, int nTokens)
    {
        using var plain = new NativeWeights(type, rows, cols, 41, interleave: true, pairGroups: false);
        using var paired = new NativeWeights(type, rows, cols, 41, interleave: true, pairGroups: true);
        Assert.False(plain.Matrix.Interleaved!.PairedGroups);
        Assert.True(paired.Matrix.Interleaved!.PairedGroups);
        float[] x = Gaussian(nTokens * cols, 42);
        ForEachKernelPath(kernels =>
        {
            foreach (int threads in new[] { 1, 2 })
            {
                using var pool = new KernelPool(threads);
                foreach (int n in new[] { 1, nTokens })
                    AssertBitsEqual(Multiply(pool, plain.Matrix, x, n), Multiply(pool, paired.Matrix, x, n),
                        $"{type} {rows}x{cols} ({kernels}, {threads} threads, {n} tokens): paired vs plain copy");
            }
        });
    }

    /// <summary>The types whose copies can pair their groups (<see cref="InterleavedRows.CanPairGroups"/>).</summary>
    public static TheoryData<GgmlType> PairableTypes() => new(GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.MXFP4);

    [Theory]
    [MemberData(nameof(PairableTypes))]
    public unsafe void PairingPutsEveryPartOfABlockAtTwiceItsOffset(GgmlType type)
    {
        // Three groups of 8 rows x 3 blocks: pair (0, 1) rearranged within its own bytes, group 2 alone and untouched.
        using var plain = new NativeWeights(type, 24, 96, 43, interleave: true, pairGroups: false);
        using var paired = new NativeWeights(type, 24, 96, 43, interleave: true, pairGroups: true);
        var a = plain.Matrix.Interleaved!;
        var b = paired.Matrix.Interleaved!;
        Assert.Equal(a.Bytes, b.Bytes);
        int pairBytes = 2 * a.GroupBytes, blockBytes = 8 * GgmlTypes.BlockBytes(type);
        Assert.Equal(new ReadOnlySpan<byte>(a.Data, pairBytes).ToArray().Order(), new ReadOnlySpan<byte>(b.Data, pairBytes).ToArray().Order());
        Assert.True(new ReadOnlySpan<byte>(a.Data + pairBytes, a.GroupBytes).SequenceEqual(new ReadOnlySpan<byte>(b.Data + pairBytes, a.GroupBytes)));
        // The parts of a group block: d, (m,) (the fifth-bit plane,) four quant vectors. In block 1 of the pair each
        // lies at twice its offset, the first group's, then the second's.
        var parts = new List<int> { type == GgmlType.MXFP4 ? 8 : 16 }; // MXFP4: eight E8M0 bytes
        if (type is GgmlType.Q4_1 or GgmlType.Q5_1) parts.Add(16);
        if (type is GgmlType.Q5_0 or GgmlType.Q5_1) parts.Add(32);
        parts.AddRange([32, 32, 32, 32]);
        Assert.Equal(blockBytes, parts.Sum());
        byte* pair = b.Data + 2 * blockBytes, g0 = a.Data + blockBytes, g1 = a.Data + a.GroupBytes + blockBytes;
        int offset = 0;
        foreach (int size in parts)
        {
            Assert.True(new ReadOnlySpan<byte>(pair + 2 * offset, size).SequenceEqual(new ReadOnlySpan<byte>(g0 + offset, size)), $"{type}: first group's part at {offset}");
            Assert.True(new ReadOnlySpan<byte>(pair + 2 * offset + size, size).SequenceEqual(new ReadOnlySpan<byte>(g1 + offset, size)), $"{type}: second group's part at {offset}");
            offset += size;
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q5_1)]
    public unsafe void RearrangingInPlaceGivesEachLayoutsBytes(GgmlType type)
    {
        // What benchmarks use to time both layouts on the same memory: plain and back restore every byte.
        using var plain = new NativeWeights(type, 40, 96, 45, interleave: true, pairGroups: false);
        using var paired = new NativeWeights(type, 40, 96, 45, interleave: true, pairGroups: true);
        var a = plain.Matrix.Interleaved!;
        var b = paired.Matrix.Interleaved!;
        byte[] plainBytes = new ReadOnlySpan<byte>(a.Data, (int)a.Bytes).ToArray(), pairedBytes = new ReadOnlySpan<byte>(b.Data, (int)b.Bytes).ToArray();
        Assert.NotEqual(plainBytes, pairedBytes);
        b.SetPairedGroups(false);
        Assert.False(b.PairedGroups);
        Assert.Equal(plainBytes, new ReadOnlySpan<byte>(b.Data, (int)b.Bytes).ToArray());
        b.SetPairedGroups(true);
        Assert.True(b.PairedGroups);
        Assert.Equal(pairedBytes, new ReadOnlySpan<byte>(b.Data, (int)b.Bytes).ToArray());
        using var q8 = new NativeWeights(GgmlType.Q8_0, 16, 64, 46, interleave: true);
        Assert.Throws<InvalidOperationException>(() => q8.Matrix.Interleaved!.SetPairedGroups(true));
    }

    [Fact]
    public void OnlyTheNibbleTypesPairTheirGroups()
    {
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.F32 })
        {
            using var m = new NativeWeights(type, 16, 256, 44);
            var error = Assert.Throws<ArgumentException>(() => InterleavedRows.Create(m.Matrix, pairGroups: true));
            Assert.Contains(type.ToString(), error.Message);
            Assert.False(InterleavedRows.PairsGroupsByDefault(type));
        }
    }

    [Theory]
    [MemberData(nameof(PairableTypes))]
    public void CopiesArePairedWhereTheTypesDecodeRunsOnAvx512WithVnni(GgmlType type)
    {
        // Measured faster where a CPU has both AVX-512 and AVX-VNNI; an AVX-512 CPU without AVX-VNNI (Zen 4;
        // DOTNET_EnableAVXVNNI=0 shows it here) keeps plain copies.
        bool measuredClass = KernelPaths.IsAvailable(KernelPath.Avx2Vnni);
        foreach (var path in KernelPaths.Available)
            using (KernelPaths.Force(path))
                Assert.Equal(path == KernelPath.Avx512 && measuredClass, InterleavedRows.PairsGroupsByDefault(type));
        Assert.Equal(KernelPaths.For(type, KernelPaths.Requested, tokens: 1) == KernelPath.Avx512 && measuredClass, InterleavedRows.PairsGroupsByDefault(type));
    }

    [Fact]
    public void ASpeedRecordSaysWhereCopiesPairTheirGroups()
    {
        // The same Q4_0 file loaded as a model load decides (paired where Q4_0 decode runs AVX-512) and on the AVX2 path.
        string dir = Directory.CreateTempSubdirectory("kvsharp-paired-").FullName;
        try
        {
            string path = SyntheticModelBuilder.GetOrCreate(Bench.SyntheticModelTests.Micro, GgmlType.Q4_0, 32, 9, dir);
            using (var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }))
            {
                bool paired = InterleavedRows.PairsGroupsByDefault(GgmlType.Q4_0);
                Assert.Equal(paired, model.Weights.Layers[0].Gate.Interleaved!.PairedGroups);
                Assert.Equal(KernelPaths.Describe(GgmlType.Q4_0) + (paired ? ", paired groups" : ""), KvSharp.Cli.Bench.KernelReport.Describe(model, GgmlType.Q4_0));
            }
            using (KernelPaths.Force(KernelPath.Avx2))
            using (var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }))
            {
                Assert.False(model.Weights.Layers[0].Gate.Interleaved!.PairedGroups);
                Assert.Equal("avx2", KvSharp.Cli.Bench.KernelReport.Describe(model, GgmlType.Q4_0));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> once on every SIMD kernel path this machine has (AVX2, and AVX-VNNI or AVX-512 where
    /// the CPU and .NET expose them: <see cref="KernelPaths"/>); the argument names the path.
    /// </summary>
    internal static void ForEachKernelPath(Action<string> body)
    {
        foreach (var path in KernelPaths.Available.Where(p => p != KernelPath.Scalar))
            using (KernelPaths.Force(path))
                body(KernelPaths.Name(path));
    }

    [Theory]
    [InlineData(GgmlType.Q4_0, 0xFF, 1f)]
    [InlineData(GgmlType.Q4_0, 0xFF, -1f)]
    [InlineData(GgmlType.Q4_0, 0x00, 1f)]
    [InlineData(GgmlType.Q8_0, 0x7F, -1f)]
    [InlineData(GgmlType.Q8_0, 0x80, 1f)]
    public void ExtremeBlocksDoNotOverflow(GgmlType type, byte quantByte, float activation)
    {
        // Every quant at its extreme (Q4_0 nibbles 15 or 0; Q8_0 bytes 127 or -128) against activations of +-127:
        // the largest partial sums the int16 lanes ever hold. The result must be the exact integer dot times the scales.
        int rows = 24, cols = 64, blockBytes = type == GgmlType.Q8_0 ? 34 : 18; // AVX-512: a pair of groups, then a lone one
        var bytes = new byte[rows * cols / 32 * blockBytes];
        for (int b = 0; b < bytes.Length; b += blockBytes)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)1f);
            bytes.AsSpan(b + 2, blockBytes - 2).Fill(quantByte);
        }
        using var w = new NativeWeights(type, rows, cols, bytes, interleave: true);
        using var pool = new KernelPool(1);
        int weight = type == GgmlType.Q8_0 ? (sbyte)quantByte : (quantByte & 0xF) - 8;
        float dy = (float)(Half)(1f / 127);
        float want = 0;
        for (int b = 0; b < cols / 32; b++) want = MathF.FusedMultiplyAdd(dy, 32 * weight * 127 * MathF.Sign(activation), want);
        // One token, four and nine (eight at once, then one): every kernel a group of rows can run on.
        ForEachKernelPath(_ =>
        {
            foreach (int nTokens in new[] { 1, 4, 9 })
            {
                float[] x = Enumerable.Repeat(activation, nTokens * cols).ToArray();
                float[] y = Multiply(pool, w.Matrix, x, nTokens);
                foreach (float got in y) Assert.Equal(want, got);
            }
        });
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 0xFF, false)]
    [InlineData(GgmlType.Q4_K, 0xFF, true)]
    [InlineData(GgmlType.Q4_K, 0x00, true)]
    [InlineData(GgmlType.Q5_K, 0xFF, false)]
    [InlineData(GgmlType.Q5_K, 0xFF, true)]
    [InlineData(GgmlType.Q5_K, 0x00, true)]
    public void ExtremeQ4_KAndQ5_KBlocksDoNotOverflow(GgmlType type, byte quantByte, bool mixedSigns)
    {
        // Every quant at its extreme (Q4_K: nibbles 15 or 0; Q5_K: 31 or 0) and every 6-bit scale and min 63 against
        // activation quants of +-127: the largest sums the int16 lanes ever hold (per sub-block eight vpmaddubsw pairs
        // of 2 x 15 x 127, or four of 2 x 31 x 127). Q8_K quantizes the first largest value of a block to -127, so
        // equal inputs give all -127 and [-1, 1, 1, ...] gives one -127 then +127s. The result must be the exact
        // integer sums times the scales in the block-sequential order.
        int rows = 24, cols = 512, blocks = cols / 256, blockBytes = GgmlTypes.BlockBytes(type); // AVX-512: a pair of groups, then a lone one
        var bytes = new byte[rows * blocks * blockBytes];
        for (int b = 0; b < bytes.Length; b += blockBytes)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)1f);
            BitConverter.TryWriteBytes(bytes.AsSpan(b + 2, 2), (Half)0.5f);
            bytes.AsSpan(b + 4, 12).Fill(0xFF);
            bytes.AsSpan(b + 16, blockBytes - 16).Fill(quantByte); // Q5_K: the fifth bits too
        }
        using var w = new NativeWeights(type, rows, cols, bytes, interleave: true);
        float[] x = Enumerable.Repeat(1f, cols).ToArray();
        if (mixedSigns) for (int b = 0; b < blocks; b++) x[256 * b] = -1;
        byte[] xq = QuantizeRow(GgmlType.Q8_K, x);
        int quant = quantByte == 0 ? 0 : type == GgmlType.Q4_K ? 15 : 31;
        float want = 0;
        for (int b = 0; b < blocks; b++)
        {
            float dy = BitConverter.ToSingle(xq, b * 292);
            long isum = 0, msum = 0;
            for (int i = 0; i < 256; i++)
            {
                int q = (sbyte)xq[b * 292 + 4 + i];
                Assert.Equal(127, Math.Abs(q));
                isum += 63 * quant * q;
                msum += 63 * q;
            }
            want = MathF.FusedMultiplyAdd(dy * 1f, isum, want);
            want = MathF.FusedMultiplyAdd(-(dy * 0.5f), msum, want);
        }
        using var pool = new KernelPool(1);
        ForEachKernelPath(_ =>
        {
            foreach (int nTokens in new[] { 1, 4 })
            {
                float[] y = Multiply(pool, w.Matrix, Enumerable.Range(0, nTokens).SelectMany(_ => x).ToArray(), nTokens);
                foreach (float got in y) Assert.Equal(want, got);
            }
        });
        Assert.Equal(want, VecDot.Dot(type, w.Matrix.Row(0), xq, cols, avx2: false));
    }

    [Theory]
    [InlineData(0xFF, 127, false)]
    [InlineData(0xFF, -128, true)]
    [InlineData(0x00, -128, false)]
    [InlineData(0x00, 127, true)]
    public void ExtremeQ6_KBlocksDoNotOverflow(byte quantByte, sbyte scale, bool mixedSigns)
    {
        // Every 6-bit quant 63 (or 0, i.e. -32 after the offset) and every scale at an extreme against activation quants
        // of +-127 (see the Q4_K case): two words of vpmaddubsw pairs of 2 x 63 x 127 in the int16 lanes, and on VNNI a
        // sub-block's int32 sum times its scale.
        int rows = 24, cols = 512, blocks = cols / 256; // AVX-512: a pair of groups, then a lone one
        var bytes = new byte[rows * blocks * 210];
        for (int b = 0; b < bytes.Length; b += 210)
        {
            bytes.AsSpan(b, 192).Fill(quantByte);
            bytes.AsSpan(b + 192, 16).Fill((byte)scale);
            BitConverter.TryWriteBytes(bytes.AsSpan(b + 208, 2), (Half)0.25f);
        }
        using var w = new NativeWeights(GgmlType.Q6_K, rows, cols, bytes, interleave: true);
        float[] x = Enumerable.Repeat(1f, cols).ToArray();
        if (mixedSigns) for (int b = 0; b < blocks; b++) x[256 * b] = -1;
        byte[] xq = QuantizeRow(GgmlType.Q8_K, x);
        int weight = (quantByte == 0xFF ? 63 : 0) - 32;
        float want = 0;
        for (int b = 0; b < blocks; b++)
        {
            long isum = 0;
            for (int i = 0; i < 256; i++) isum += scale * weight * (sbyte)xq[b * 292 + 4 + i];
            want = MathF.FusedMultiplyAdd(BitConverter.ToSingle(xq, b * 292) * 0.25f, isum, want);
        }
        using var pool = new KernelPool(1);
        ForEachKernelPath(_ =>
        {
            foreach (int nTokens in new[] { 1, 4 })
            {
                float[] y = Multiply(pool, w.Matrix, Enumerable.Range(0, nTokens).SelectMany(_ => x).ToArray(), nTokens);
                foreach (float got in y) Assert.Equal(want, got);
            }
        });
        Assert.Equal(want, VecDot.Dot(GgmlType.Q6_K, w.Matrix.Row(0), xq, cols, avx2: false));
    }

    [Theory]
    [InlineData("Q8_0")]
    [InlineData("Q4_0")]
    [InlineData("Q4_K_M")]
    [InlineData("Q5_K_M")]
    [InlineData("Q6_K")]
    [InlineData("F32")]
    public void LoaderInterleavesMatmulWeightsButNotTheEmbedding(string type)
    {
        using var model = LlmModel.Load(Fixtures.Get("llama-gqa", type).GgufPath);
        var layer = model.Weights.Layers[0];
        foreach (var m in new[] { layer.Query, layer.Key, layer.Value, layer.AttentionOutput, layer.Gate, layer.Up, layer.Down, model.Weights.Output })
        {
            Assert.NotNull(m.Interleaved);
            Assert.Equal(m.Rows / 8, m.Interleaved!.Groups);
            Assert.Equal(m.Rows / 8 * 8L * m.RowBytes, m.Interleaved.Bytes);
        }
        Assert.Null(model.Weights.TokenEmbedding.Interleaved);
    }
}
