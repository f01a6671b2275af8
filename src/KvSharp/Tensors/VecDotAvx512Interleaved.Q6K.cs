using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;
using static KvSharp.Tensors.VecDotAvx2Interleaved;

namespace KvSharp.Tensors;

/// <summary>
/// Q6_K over sixteen rows (two groups, one row per lane) by four tokens: <see cref="VecDotAvx2Interleaved.Q6_Kx4"/>'s
/// arithmetic at twice the width (the same exact integer per super-block and row, the same offset term and float step,
/// so the same bits). One token and the last tokens short of four run the one-group AVX2 kernel.
/// </summary>
internal static unsafe partial class VecDotAvx512Interleaved
{
    /// <summary>vpshufb control: bytes b0 and b1 of each 32-bit lane into the high bytes of its two int16 halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> ToHighBytes(int b0, int b1)
        => (Vector512.Create(0x00800080u | (uint)b0 << 8 | (uint)b1 << 24) + (LaneBytes << 8)).AsByte();

    /// <summary>The sixteen rows' signed scale of sub-block k (0..15), in both int16 halves of each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScaleK6(byte* w, nint groupBytes, int k)
        => Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(Load2(w, groupBytes, K6Scales + 32 * (k >> 2)), ToHighBytes(k & 3, k & 3)).AsInt16(), 8);

    /// <summary>32 x the scales of sub-blocks 2i and 2i + 1 in the two int16 halves of each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScalePairTimes32K6(byte* w, nint groupBytes, int i)
        => Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(Load2(w, groupBytes, K6Scales + 32 * (i >> 1)), ToHighBytes(2 * (i & 1), 2 * (i & 1) + 1)).AsInt16(), 3);

    /// <summary>The unsigned 6-bit quants of one word position of a half for the four 32-element groups (see the AVX2 QuantsK6).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantsK6(byte* w, nint groupBytes, int offset, out Vector512<byte> g0, out Vector512<byte> g1, out Vector512<byte> g2, out Vector512<byte> g3)
    {
        Vector512<byte> nib = Vector512.Create((byte)0x0F), top = Vector512.Create((byte)0x30);
        Vector512<ushort> l0 = Load2(w, groupBytes, offset).AsUInt16(), l1 = Load2(w, groupBytes, offset + 64).AsUInt16();
        Vector512<ushort> h = Load2(w, groupBytes, offset + 128).AsUInt16();
        g0 = (l0.AsByte() & nib) | (Avx512BW.ShiftLeftLogical(h, 4).AsByte() & top);
        g1 = (l1.AsByte() & nib) | (Avx512BW.ShiftLeftLogical(h, 2).AsByte() & top);
        g2 = (Avx512BW.ShiftRightLogical(l0, 4).AsByte() & nib) | (h.AsByte() & top);
        g3 = (Avx512BW.ShiftRightLogical(l1, 4).AsByte() & nib) | (Avx512BW.ShiftRightLogical(h, 2).AsByte() & top);
    }

    /// <summary>Two quant words of a sub-block times a token's bytes, scaled (two words stay within int16: see the AVX2 StepK6).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> StepK6(Vector512<byte> qa, Vector512<byte> qb, byte* q, Vector512<short> sc)
        => Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qa, Broadcast4(q)) + Avx512BW.MultiplyAddAdjacent(qb, Broadcast4(q + 4)), sc);

    /// <summary>Two word positions of the four groups of a half times a token's bytes at q (group g's at q + 32g), scaled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Groups4K6(Vector512<byte> x0, Vector512<byte> x1, Vector512<byte> x2, Vector512<byte> x3,
        Vector512<byte> z0, Vector512<byte> z1, Vector512<byte> z2, Vector512<byte> z3,
        Vector512<short> c0, Vector512<short> c1, Vector512<short> c2, Vector512<short> c3, byte* q)
        => StepK6(x0, z0, q, c0) + StepK6(x1, z1, q + 32, c1) + (StepK6(x2, z2, q + 64, c2) + StepK6(x3, z3, q + 96, c3));

    /// <summary>The offset of 32 for sub-blocks 2i, 2i + 1: isum -= 32 sc · bsum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> OffsetK6(Vector512<int> isum, Vector512<short> sc32, byte* y, int i)
        => isum - Avx512BW.MultiplyAddAdjacent(sc32, Vector512.Create(*(int*)(y + Q8_K_Bsums + 4 * i)).AsInt16());

    /// <summary>acc = fma(dy · d, isum, acc) for sixteen rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FinishK6(Vector512<float> acc, Vector512<float> dx, byte* y, Vector512<int> isum)
        => Avx512F.FusedMultiplyAdd(Vector512.Create(*(float*)y) * dx, Avx512F.ConvertToVector512Single(isum), acc);

    /// <summary>Sixteen Q6_K rows (groups at w and w + groupBytes) by four tokens.</summary>
    private static void Q6_KX4(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        int nb = n / QK_K;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += K6Block, y += Q8_KBytes)
        {
            PrefetchSuperBlockPairAhead(w, groupBytes, K6Block);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int hs = 0; hs < 8; hs++) // half h = hs / 4, word positions s = 2 (hs % 4) and s + 1
            {
                int h = hs >> 2, s = 2 * (hs & 3), k = 8 * h + (s >> 2); // k: group 0's sub-block; group g's is k + 2g
                int p = K6Quants + 192 * hs;
                byte* q = y + Q8_K_Qs + 128 * h + 4 * s;
                QuantsK6(w, groupBytes, p, out Vector512<byte> x0, out Vector512<byte> x1, out Vector512<byte> x2, out Vector512<byte> x3);
                QuantsK6(w, groupBytes, p + 32, out Vector512<byte> z0, out Vector512<byte> z1, out Vector512<byte> z2, out Vector512<byte> z3);
                Vector512<short> c0 = ScaleK6(w, groupBytes, k), c1 = ScaleK6(w, groupBytes, k + 2);
                Vector512<short> c2 = ScaleK6(w, groupBytes, k + 4), c3 = ScaleK6(w, groupBytes, k + 6);
                i0 += Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q);
                i1 += Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s1);
                i2 += Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s2);
                i3 += Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s3);
            }
            for (int i = 0; i < 8; i++)
            {
                Vector512<short> sc32 = ScalePairTimes32K6(w, groupBytes, i);
                i0 = OffsetK6(i0, sc32, y, i);
                i1 = OffsetK6(i1, sc32, y + s1, i);
                i2 = OffsetK6(i2, sc32, y + s2, i);
                i3 = OffsetK6(i3, sc32, y + s3, i);
            }
            Vector512<float> dx = Scales(w, groupBytes);
            a0 = FinishK6(a0, dx, y, i0);
            a1 = FinishK6(a1, dx, y + s1, i1);
            a2 = FinishK6(a2, dx, y + s2, i2);
            a3 = FinishK6(a3, dx, y + s3, i3);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }
}
