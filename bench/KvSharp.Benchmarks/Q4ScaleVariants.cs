using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Benchmarks;

/// <summary>
/// Issue 18: ways to pay less for Q4_0's block scales and nibbles in the one-token kernels (.NET 10 exposes no F16C:
/// no Half conversion in any X86 intrinsic class, Avx10v1/v2 unsupported on Zen 4), each giving the shipped kernels'
/// bits, which the benchmark checks first. All measured and dropped: none paid streamed from memory. Measured with
/// <see cref="OneTokenAlternation"/> over a `small` model's Q4_0 matrices (62 MB) on a shared 2-core Zen 4 at load
/// 11-28 (only ratios; 120-300 alternated rounds per run, each timing after an untimed token of the same variant),
/// against the shipped kernels (<see cref="OldHalves"/>, shift-and-mask nibbles); "in L2" is the arithmetic alone
/// (TYPE:l2). Alternating just the two kernels is the cleanest; runs with more variants read 3-8% higher.
/// <list type="bullet">
/// <item>Float scales: the group block's eight scales stored as floats at load (32 bytes instead of 16, blocks of 160
/// bytes instead of 144). In L2 1.18-1.24x; streamed, AVX-512 pair kernel 0.60-0.69x, AVX2 (16 registers,
/// DOTNET_EnableAVX512=0) 0.91-0.95x, on one thread and on two.</item>
/// <item>Cheap halves (<see cref="CheapHalves"/>): the conversion in four instructions, exact for finite halves (would
/// need a load-time guard against infinite or NaN scales). In L2 1.06-1.10x; streamed, two-kernel runs: AVX2
/// 0.98-1.03x (median 1.015x over six), AVX-512 0.93-0.97x; runs with more variants 1.03-1.07x and 0.95-1.15x.</item>
/// <item>GFNI high nibbles (<see cref="GfniNibbles"/>): one vgf2p8affineqb instead of a shift and a mask. In L2
/// 1.02-1.06x; streamed, two-kernel runs 1.00-1.02x, with more variants 1.03-1.09x. With the cheap halves on AVX-512:
/// 1.11x in L2, 0.91-1.01x streamed (two-kernel runs).</item>
/// <item>Pair streams (<see cref="PairStreamCopy"/>): each pair of groups merged into one stream, so a 512-bit vector
/// is one load and the hardware prefetcher sees one stream. In L2 1.18-1.22x; streamed 0.96-1.01x without prefetch
/// requests, slower with them (0.77-0.95x); it had read 1.12-1.30x in runs where it followed a variant over its own
/// copy, an artefact of what L3 kept.</item>
/// </list>
/// So the streamed one-token Q4_0 product on this host runs at the speed of a loop that only loads its bytes (LoadOnly
/// 0.98-1.05x of it in steady state): memory, not arithmetic, bounds it here.
/// </summary>
internal static unsafe class Q4ScaleVariants
{
    private const int Extras = 8;

    /// <summary>A float-scale group block: eight float scales, then the four 32-byte vectors of packed nibbles.</summary>
    public const int FloatBlockBytes = 8 * sizeof(float) + 4 * 32;

    /// <summary>
    /// A float-scale copy of <paramref name="packed"/> (Q4_0, <paramref name="cols"/> columns) on the same huge-page
    /// slabs; <paramref name="groupBytes"/>: its group stride.
    /// </summary>
    public static byte* FloatScaleCopy(InterleavedRows packed, int cols, out int groupBytes, out HugePageSlabs.Slab slab)
    {
        int blocks = cols / QK;
        groupBytes = blocks * FloatBlockBytes;
        byte* copy = HugePageSlabs.Allocate(Math.Max(1, (long)packed.Groups * groupBytes), out slab);
        for (int g = 0; g < packed.Groups; g++)
            for (int b = 0; b < blocks; b++)
            {
                byte* src = packed.Data + (long)g * packed.GroupBytes + b * 8 * Q4_0Bytes;
                byte* dst = copy + (long)g * groupBytes + b * FloatBlockBytes;
                for (int r = 0; r < 8; r++) ((float*)dst)[r] = (float)BitConverter.UInt16BitsToHalf(((ushort*)src)[r]);
                Buffer.MemoryCopy(src + 16, dst + 32, 128, 128);
            }
        return copy;
    }

    /// <summary>
    /// A copy of <paramref name="packed"/> (Q4_0, an even number of groups) with each pair of groups merged into one stream,
    /// as the AVX-512 pair kernel reads them: per block, the sixteen half scales (group 0's eight, then group 1's), then
    /// for each k the two groups' vector k side by side (64 bytes), so a 512-bit vector is one load and a pair is one
    /// stream. Pair p sits where group 2p did.
    /// </summary>
    public static byte* PairStreamCopy(InterleavedRows packed, int cols, out HugePageSlabs.Slab slab)
    {
        if (packed.Groups % 2 != 0) throw new ArgumentException($"Q4ScaleVariants: {packed.Groups} groups is odd");
        int blocks = cols / QK, blockBytes = 8 * Q4_0Bytes;
        byte* copy = HugePageSlabs.Allocate(Math.Max(1, (long)packed.Groups * packed.GroupBytes), out slab);
        for (int g = 0; g < packed.Groups; g += 2)
            for (int b = 0; b < blocks; b++)
            {
                byte* a = packed.Data + (long)g * packed.GroupBytes + b * blockBytes, c = a + packed.GroupBytes;
                byte* dst = copy + (long)g * packed.GroupBytes + b * 2 * blockBytes;
                Buffer.MemoryCopy(a, dst, 16, 16);
                Buffer.MemoryCopy(c, dst + 16, 16, 16);
                for (int k = 0; k < 4; k++)
                {
                    Buffer.MemoryCopy(a + 16 + 32 * k, dst + 32 + 64 * k, 32, 32);
                    Buffer.MemoryCopy(c + 16 + 32 * k, dst + 64 + 64 * k, 32, 32);
                }
            }
        return copy;
    }

    /// <summary>
    /// The shipped pair kernel's arithmetic over <see cref="PairStreamCopy"/>: one 64-byte load per vector, the sixteen
    /// scales converted at 512 bits, and (<typeparamref name="THint"/>) the block two pairs on requested into L2 or not.
    /// </summary>
    public static void PairStream1<THint>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
        where THint : OneTokenVariants.IHint
    {
        const int B = 16 * Q4_0Bytes;
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector512<byte> mask = Vector512.Create((byte)0x0F);
        Vector512<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += B, y += Q8_0Bytes, e += Extras)
        {
            if (typeof(THint) != typeof(OneTokenVariants.NoHint))
                for (int o = 0; o < B; o += 64) THint.Line(w + 4 * groupBytes + o);
            Vector512<short> i0 = default, i1 = default;
            for (int k = 0; k < 4; k += 2)
            {
                Vector512<byte> v0 = Vector512.Load(w + 32 + 64 * k), v1 = Vector512.Load(w + 96 + 64 * k);
                i0 = Step512<GfniNibbles>(i0, v0, mask, y + 2 + 4 * k);
                i1 = Step512<GfniNibbles>(i1, v1, mask, y + 6 + 4 * k);
            }
            Vector512<int> sum = Avx512BW.MultiplyAddAdjacent(i0 + i1, Vector512.Create((short)1)) - Vector512.Create(*(int*)(e + 4));
            Vector512<int> h = Avx512BW.ConvertToVector512Int32(Avx.LoadVector256((short*)w));
            Vector512<float> dx = ((h << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * Vector512.Create(5.192297e33f);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.Multiply(dx, Vector512.Create(*(float*)e)), Avx512F.ConvertToVector512Single(sum), acc);
        }
        Vector512.Store(acc, output);
    }

    /// <summary>How a group block's eight scales become floats: loaded (float layout) or converted cheaply.</summary>
    public interface IScales
    {
        static abstract int BlockBytes { get; }

        /// <summary>Offset of the packed nibbles in a group block.</summary>
        static abstract int Quants { get; }

        static abstract Vector256<float> Load(byte* w);
    }

    public readonly struct FloatScales : IScales
    {
        public static int BlockBytes => FloatBlockBytes;
        public static int Quants => 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load(byte* w) => Avx.LoadVector256((float*)w);
    }

    /// <summary>The layout and conversion the Q4_0 kernels had before (<see cref="VecDotAvx2.HalfToSingle(ushort*)"/>, nine instructions).</summary>
    public readonly struct OldHalves : IScales
    {
        public static int BlockBytes => 8 * Q4_0Bytes;
        public static int Quants => 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load(byte* w) => VecDotAvx2.HalfToSingle((ushort*)w);
    }

    public readonly struct CheapHalves : IScales
    {
        public static int BlockBytes => 8 * Q4_0Bytes;
        public static int Quants => 16;

        /// <summary>
        /// Sign-extended and shifted left by 13, a half's exponent and mantissa sit where a float's do and its sign fills
        /// bits 28-31, of which the mask keeps 31; times 2^112 rebases the exponent, exactly (subnormals too). Infinite
        /// and NaN halves come out finite.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load(byte* w)
        {
            Vector256<int> h = Avx2.ConvertToVector256Int32((short*)w);
            Vector256<int> bits = Avx2.And(Avx2.ShiftLeftLogical(h, 13), Vector256.Create(unchecked((int)0x8FFFFFFF)));
            return Avx.Multiply(bits.AsSingle(), Vector256.Create(5.192297e33f /* 2^112 */));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast4(byte* q) => Vector256.Create(*(int*)q).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Step(Vector256<short> sum, Vector256<byte> v, Vector256<byte> mask, byte* q)
        => Avx2.Add(Avx2.Add(sum, Avx2.MultiplyAddAdjacent(Avx2.And(v, mask), Broadcast4(q))),
            Avx2.MultiplyAddAdjacent(Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask), Broadcast4(q + 16)));

    /// <summary>VecDotAvx2Interleaved.NibbleBlock (Q4_0) with the nibbles at <paramref name="qs"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Block(byte* qs, byte* y, byte* e, Vector256<byte> mask)
    {
        Vector256<short> i0 = Step(default, Avx.LoadVector256(qs), mask, y + 2);
        Vector256<short> i1 = Step(default, Avx.LoadVector256(qs + 32), mask, y + 6);
        i0 = Step(i0, Avx.LoadVector256(qs + 64), mask, y + 10);
        i1 = Step(i1, Avx.LoadVector256(qs + 96), mask, y + 14);
        return Avx2.Subtract(Avx2.MultiplyAddAdjacent(Avx2.Add(i0, i1), Vector256.Create((short)1)), Vector256.Create(*(int*)(e + 4)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> acc, Vector256<float> dx, byte* e, Vector256<int> sum)
        => Fma.MultiplyAdd(Avx.Multiply(dx, Vector256.Create(*(float*)e)), Avx.ConvertToVector256Single(sum), acc);

    /// <summary>VecDotAvx2Interleaved.Q4_0x1 (four blocks per iteration) with <typeparamref name="TScales"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void X1<TScales>(byte* w, byte* y, int n, float* output) where TScales : IScales
    {
        int B = TScales.BlockBytes, Q = TScales.Quants;
        int nb = n / QK, ib = 0;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default;
        for (; ib + 4 <= nb; ib += 4, w += 4 * B, y += 4 * Q8_0Bytes, e += 4 * Extras)
        {
            Vector256<int> s0 = Block(w + Q, y, e, mask), s1 = Block(w + B + Q, y + Q8_0Bytes, e + Extras, mask);
            Vector256<int> s2 = Block(w + 2 * B + Q, y + 2 * Q8_0Bytes, e + 2 * Extras, mask);
            Vector256<int> s3 = Block(w + 3 * B + Q, y + 3 * Q8_0Bytes, e + 3 * Extras, mask);
            acc = Finish(acc, TScales.Load(w), e, s0);
            acc = Finish(acc, TScales.Load(w + B), e + Extras, s1);
            acc = Finish(acc, TScales.Load(w + 2 * B), e + 2 * Extras, s2);
            acc = Finish(acc, TScales.Load(w + 3 * B), e + 3 * Extras, s3);
        }
        for (; ib < nb; ib++, w += B, y += Q8_0Bytes, e += Extras)
            acc = Finish(acc, TScales.Load(w), e, Block(w + Q, y, e, mask));
        Avx.Store(output, acc);
    }

    /// <summary>VecDotAvx512Interleaved's one-token pair kernel for Q4_0 (two groups, the pair after next prefetched) with <typeparamref name="TScales"/>.</summary>
    public static void Pair1<TScales, TNibbles>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride) where TScales : IScales
    {
        int B = TScales.BlockBytes, Q = TScales.Quants;
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector512<byte> mask = Vector512.Create((byte)0x0F);
        Vector512<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += B, y += Q8_0Bytes, e += Extras)
        {
            byte* ahead = w + 4 * groupBytes;
            for (int o = 0; o < B; o += 64)
            {
                Sse.Prefetch1(ahead + o);
                Sse.Prefetch1(ahead + groupBytes + o);
            }
            Vector512<short> i0 = default, i1 = default;
            for (int k = 0; k < 4; k += 2)
            {
                Vector512<byte> v0 = Load2(w, groupBytes, Q + 32 * k), v1 = Load2(w, groupBytes, Q + 32 + 32 * k);
                i0 = Step512<TNibbles>(i0, v0, mask, y + 2 + 4 * k);
                i1 = Step512<TNibbles>(i1, v1, mask, y + 6 + 4 * k);
            }
            Vector512<int> sum = Avx512BW.MultiplyAddAdjacent(i0 + i1, Vector512.Create((short)1)) - Vector512.Create(*(int*)(e + 4));
            Vector512<float> dx = Avx512F.InsertVector256(TScales.Load(w).ToVector512Unsafe(), TScales.Load(w + groupBytes), 1);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.Multiply(dx, Vector512.Create(*(float*)e)), Avx512F.ConvertToVector512Single(sum), acc);
        }
        Vector512.Store(acc, output);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Load2(byte* p, nint groupBytes, int offset)
        => Avx512F.InsertVector256(Avx.LoadVector256(p + offset).ToVector512Unsafe(), Avx.LoadVector256(p + groupBytes + offset), 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Step512<TNibbles>(Vector512<short> sum, Vector512<byte> v, Vector512<byte> mask, byte* q)
        => sum + Avx512BW.MultiplyAddAdjacent(v & mask, Vector512.Create(*(int*)q).AsSByte())
            + Avx512BW.MultiplyAddAdjacent(HighNibbles<TNibbles>(v, mask), Vector512.Create(*(int*)(q + 16)).AsSByte());

    /// <summary>
    /// The high nibbles moved down: by GFNI (the affine transform by the bit matrix whose row i, byte 7 - i, selects
    /// input bit i + 4 for i &lt; 4) or by a shift and a mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> HighNibbles<TNibbles>(Vector512<byte> v, Vector512<byte> mask)
        => typeof(TNibbles) == typeof(GfniNibbles)
            ? Gfni.V512.GaloisFieldAffineTransform(v, Vector512.Create(0x10204080_00000000UL).AsByte(), 0)
            : Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;

    /// <summary>How the pair kernel takes the high nibbles down: shift and mask (as before), or <see cref="GfniNibbles"/>.</summary>
    public readonly struct ShiftNibbles;

    /// <summary>One vgf2p8affineqb per vector instead of a shift and a mask (GFNI: Zen 4, Ice Lake and later; the variants using it need it).</summary>
    public readonly struct GfniNibbles;
}
