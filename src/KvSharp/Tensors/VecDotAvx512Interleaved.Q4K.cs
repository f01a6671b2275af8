using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;
using static KvSharp.Tensors.VecDotAvx2Interleaved;

namespace KvSharp.Tensors;

/// <summary>
/// Q4_K and Q5_K over sixteen rows (two groups, one row per lane) by four tokens: <see cref="VecDotAvx2Interleaved.Q4_Kx4"/>'s
/// arithmetic at twice the width. Per super-block and row the same exact integer (the nibbles times the token's bytes
/// summed in int16 lanes per sub-block, vpmaddwd by the 6-bit scales into int32), the same mins sum and the same two
/// float steps, so every output has the AVX2 kernels' bits. One token runs the AVX2 or VNNI one-group kernel
/// (<see cref="KernelPaths"/>), and so do the last group of a tile and a prompt's last tokens short of four.
/// </summary>
/// <remarks>
/// Zen 4 splits a 512-bit instruction in two, so there this did the AVX2 kernel's work in the same time (a first version,
/// eighth session: 0.93-1.08x); Zen 5 runs them whole.
/// </remarks>
internal static unsafe partial class VecDotAvx512Interleaved
{
    /// <summary>Scales of the sixteen rows (<see cref="VecDotAvx2.UnpackScalesK4"/>'s unpacking per lane): bytes 0..3 of lane r in sc03, 4..7 in sc47.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesK4(byte* p, nint groupBytes, out Vector512<byte> sc03, out Vector512<byte> sc47)
    {
        Vector512<uint> u0 = Load2(p, groupBytes, 0).AsUInt32(), u2 = Load2(p, groupBytes, 64).AsUInt32();
        sc03 = (u0 & Vector512.Create(0x3f3f3f3fu)).AsByte();
        sc47 = ((u2 & Vector512.Create(0x0f0f0f0fu)) | (((u0 >> 6) & Vector512.Create(0x03030303u)) << 4)).AsByte();
    }

    /// <summary>The sixteen rows' mins, like <see cref="ScalesK4"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MinsK4(byte* p, nint groupBytes, out Vector512<byte> mn03, out Vector512<byte> mn47)
    {
        Vector512<uint> u1 = Load2(p, groupBytes, 32).AsUInt32(), u2 = Load2(p, groupBytes, 64).AsUInt32();
        mn03 = (u1 & Vector512.Create(0x3f3f3f3fu)).AsByte();
        mn47 = (((u2 >> 4) & Vector512.Create(0x0f0f0f0fu)) | (((u1 >> 6) & Vector512.Create(0x03030303u)) << 4)).AsByte();
    }

    /// <summary>
    /// vpshufb indexes of each 32-bit lane's own bytes (4i within a 128-bit lane), in both int16 halves. All sixteen
    /// lanes spelled out: built from a 128-bit vector, the JIT assembled it with two inserts at every use, per
    /// sub-block in the loops of <see cref="QuantKX4{T}"/>.
    /// </summary>
    private static Vector512<uint> LaneBytes => Vector512.Create(0u, 0x00040004u, 0x00080008u, 0x000C000Cu, 0u, 0x00040004u, 0x00080008u, 0x000C000Cu,
        0u, 0x00040004u, 0x00080008u, 0x000C000Cu, 0u, 0x00040004u, 0x00080008u, 0x000C000Cu);

    /// <summary>Byte <paramref name="k"/> (0..3) of each 32-bit lane, zero-extended into both of its int16 halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ByteInBothHalves(Vector512<byte> v, int k)
        => Avx512BW.Shuffle(v, (Vector512.Create(0x80008000u + (uint)k * 0x00010001u) + LaneBytes).AsByte()).AsInt16();

    /// <summary>Bytes 2h and 2h + 1 of each 32-bit lane, zero-extended to its two int16 halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> BytePair(Vector512<byte> v, int h)
        => Avx512BW.Shuffle(v, (Vector512.Create(0x80018000u + (uint)h * 0x00020002u) + LaneBytes).AsByte()).AsInt16();

    /// <summary>Σ_k min_k · bsum32_k per lane (the token's 32-element quant sums against each row's mins).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> MinSums(Vector512<byte> mn03, Vector512<byte> mn47, byte* y)
    {
        short* bs = (short*)(y + Q8_K_Bsums);
        Vector128<short> b = Ssse3.HorizontalAdd(Sse2.LoadVector128(bs), Sse2.LoadVector128(bs + 8));
        Vector512<int> bb = Vector512.Create(b).AsInt32();
        return Avx512BW.MultiplyAddAdjacent(BytePair(mn03, 0), Avx512F.Shuffle(bb, 0x00).AsInt16())
            + Avx512BW.MultiplyAddAdjacent(BytePair(mn03, 1), Avx512F.Shuffle(bb, 0x55).AsInt16())
            + (Avx512BW.MultiplyAddAdjacent(BytePair(mn47, 0), Avx512F.Shuffle(bb, 0xAA).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(BytePair(mn47, 1), Avx512F.Shuffle(bb, 0xFF).AsInt16()));
    }

    /// <summary>acc = fma(dy·d, isum, acc), then acc -= (dy·dmin)·msum, per lane (<see cref="VecDotScalar.AccumulateK4"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FinishK4(Vector512<float> acc, byte* w, nint groupBytes, byte* y, Vector512<int> isum, Vector512<byte> mn03, Vector512<byte> mn47)
    {
        Vector512<float> dy = Vector512.Create(*(float*)y);
        acc = Avx512F.FusedMultiplyAdd(dy * Scales(w, groupBytes), Avx512F.ConvertToVector512Single(isum), acc);
        return Avx512F.FusedMultiplyAddNegated(dy * Scales(w + 16, groupBytes), Avx512F.ConvertToVector512Single(MinSums(mn03, mn47, y)), acc);
    }

    /// <summary>Sixteen Q4_K rows (groups at w and w + groupBytes) by four tokens.</summary>
    private static void Q4_KX4(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
        => QuantKX4<Q4KBlocks>(w, groupBytes, y, yStride, n, output, outStride);

    /// <summary>Sixteen Q5_K rows by four tokens: Q4_K's with each quant's fifth bit or'ed in (<see cref="VecDotAvx2Interleaved.Q5_Kx4"/>).</summary>
    private static void Q5_KX4(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
        => QuantKX4<Q5KBlocks>(w, groupBytes, y, yStride, n, output, outStride);

    /// <summary>Where a K-quant group super-block keeps its parts; the kernel is compiled once per type, with them folded in.</summary>
    private interface IKBlocks
    {
        /// <summary>Bytes of a group's super-block.</summary>
        static abstract int BlockBytes { get; }

        /// <summary>Offset of the quant vectors.</summary>
        static abstract int Qs { get; }

        /// <summary>Offset of the fifth bits (Q5_K), or -1.</summary>
        static abstract int Qh { get; }
    }

    private readonly struct Q4KBlocks : IKBlocks
    {
        public static int BlockBytes => K4Block;
        public static int Qs => K4Qs;
        public static int Qh => -1;
    }

    private readonly struct Q5KBlocks : IKBlocks
    {
        public static int BlockBytes => K5Block;
        public static int Qs => K5Qs;
        public static int Qh => K5Qh;
    }

    /// <summary>
    /// Q4_K or Q5_K (<see cref="IKBlocks"/>) pairs of groups by four tokens. Q5_K's quants reach 31, so as in the
    /// AVX2 kernel its int16 sums are widened every four words (twice per sub-block).
    /// </summary>
    private static void QuantKX4<T>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride) where T : IKBlocks
    {
        int nb = n / QK_K, blockBytes = T.BlockBytes, qh = T.Qh, words = qh < 0 ? 8 : 4;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector512<byte> mask = Vector512.Create((byte)0x0F), one = Vector512.Create((byte)1);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += blockBytes, y += Q8_KBytes)
        {
            PrefetchSuperBlockPairAhead(w, groupBytes, blockBytes);
            ScalesK4(w + K4Scales, groupBytes, out Vector512<byte> sc03, out Vector512<byte> sc47);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int j = 0; j < 4; j++)
            {
                // Sub-blocks 2j and 2j + 1: the low and high nibbles of quant vectors 8j..8j+7 (elements 64j..).
                byte* q = y + Q8_K_Qs + 64 * j;
                int wv = T.Qs + 256 * j, hv = qh;
                Vector128<ushort> hLo = Vector128.CreateScalar((ushort)(2 * j)), hHi = Vector128.CreateScalar((ushort)(2 * j + 1));
                Vector512<byte> sc = j < 2 ? sc03 : sc47;
                Vector512<short> scLo = ByteInBothHalves(sc, 2 * (j & 1)), scHi = ByteInBothHalves(sc, 2 * (j & 1) + 1);
                for (int part = 0; part < 8; part += words)
                {
                    Vector512<short> l0 = default, l1 = default, l2 = default, l3 = default;
                    Vector512<short> h0 = default, h1 = default, h2 = default, h3 = default;
                    for (int s = 0; s < words; s++, wv += 32, hv += 32, q += 4)
                    {
                        Vector512<byte> v = Load2(w, groupBytes, wv);
                        Vector512<byte> lo = v & mask, hi = Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
                        if (qh >= 0)
                        {
                            Vector512<ushort> bits = Load2(w, groupBytes, hv).AsUInt16();
                            lo |= Avx512BW.ShiftLeftLogical((Avx512BW.ShiftRightLogical(bits, hLo).AsByte() & one).AsUInt16(), 4).AsByte();
                            hi |= Avx512BW.ShiftLeftLogical((Avx512BW.ShiftRightLogical(bits, hHi).AsByte() & one).AsUInt16(), 4).AsByte();
                        }
                        l0 += Avx512BW.MultiplyAddAdjacent(lo, Broadcast4(q));
                        l1 += Avx512BW.MultiplyAddAdjacent(lo, Broadcast4(q + s1));
                        l2 += Avx512BW.MultiplyAddAdjacent(lo, Broadcast4(q + s2));
                        l3 += Avx512BW.MultiplyAddAdjacent(lo, Broadcast4(q + s3));
                        h0 += Avx512BW.MultiplyAddAdjacent(hi, Broadcast4(q + 32));
                        h1 += Avx512BW.MultiplyAddAdjacent(hi, Broadcast4(q + s1 + 32));
                        h2 += Avx512BW.MultiplyAddAdjacent(hi, Broadcast4(q + s2 + 32));
                        h3 += Avx512BW.MultiplyAddAdjacent(hi, Broadcast4(q + s3 + 32));
                    }
                    i0 += Avx512BW.MultiplyAddAdjacent(l0, scLo) + Avx512BW.MultiplyAddAdjacent(h0, scHi);
                    i1 += Avx512BW.MultiplyAddAdjacent(l1, scLo) + Avx512BW.MultiplyAddAdjacent(h1, scHi);
                    i2 += Avx512BW.MultiplyAddAdjacent(l2, scLo) + Avx512BW.MultiplyAddAdjacent(h2, scHi);
                    i3 += Avx512BW.MultiplyAddAdjacent(l3, scLo) + Avx512BW.MultiplyAddAdjacent(h3, scHi);
                }
            }
            MinsK4(w + K4Scales, groupBytes, out Vector512<byte> mn03, out Vector512<byte> mn47);
            a0 = FinishK4(a0, w, groupBytes, y, i0, mn03, mn47);
            a1 = FinishK4(a1, w, groupBytes, y + s1, i1, mn03, mn47);
            a2 = FinishK4(a2, w, groupBytes, y + s2, i2, mn03, mn47);
            a3 = FinishK4(a3, w, groupBytes, y + s3, i3, mn03, mn47);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }
}
