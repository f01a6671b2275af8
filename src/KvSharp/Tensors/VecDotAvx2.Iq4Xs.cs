using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>
    /// IQ4_XS x Q8_K as ggml_vec_dot_iq4_xs_q8_K (AVX2): per super-block the pair sums of each sub-block times its
    /// scale into int32 lanes (even and odd sub-blocks apart, then added), one FMA per super-block; see
    /// <see cref="VecDotScalar.Iq4Xs"/>. The levels of two sub-blocks come from one 32-byte load (<see cref="Iq4XsLevels"/>).
    /// </summary>
    public static float Iq4Xs(byte* x, byte* y, int nb)
    {
        Vector256<sbyte> table = Iq4Table2;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, x += IQ4_XSBytes, y += Q8_KBytes)
        {
            uint sh = *(ushort*)(x + IQ4_XS_ScalesH);
            byte* qs = x + IQ4_XS_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> sumi1 = Vector256<int>.Zero, sumi2 = Vector256<int>.Zero;
            for (int ib = 0; ib < QK_K / 32; ib += 2, qs += 32, q8 += 64, sh >>= 4)
            {
                Iq4XsScales(x[IQ4_XS_ScalesL + ib / 2], sh, out Vector256<short> ls1, out Vector256<short> ls2);
                Iq4XsLevels(table, qs, out Vector256<sbyte> l1, out Vector256<sbyte> l2);
                Vector256<short> p1 = MulAddI8(l1, Avx.LoadVector256(q8));
                Vector256<short> p2 = MulAddI8(l2, Avx.LoadVector256(q8 + 32));
                sumi1 = Avx2.Add(Avx2.MultiplyAddAdjacent(p1, ls1), sumi1);
                sumi2 = Avx2.Add(Avx2.MultiplyAddAdjacent(p2, ls2), sumi2);
            }
            acc = Fma.MultiplyAdd(Vector256.Create(F16(x) * *(float*)y), Avx.ConvertToVector256Single(Avx2.Add(sumi1, sumi2)), acc);
        }
        return HSum8(acc);
    }

    /// <summary>The IQ4 level table in both 128-bit halves, for 256-bit vpshufb.</summary>
    internal static Vector256<sbyte> Iq4Table2 => Vector256.Create(Iq4Table, Iq4Table);

    /// <summary>
    /// The levels of two IQ4_XS sub-blocks (16 nibble bytes each at <paramref name="qs"/>) as ggml's
    /// <see cref="Iq4Levels"/> gives them, from one 32-byte load: 256-bit vpshufb of the low and of the high nibbles
    /// (each half one sub-block's), then the halves regrouped per sub-block. Against two <see cref="Iq4Levels"/>
    /// (two loads, four 128-bit vpshufb, two inserts): 1.13-1.15x for the whole single-row kernel (in-process A/B,
    /// one thread, 41 alternated rounds of 8 passes, 2048x2048, 768x2048, 2048x768 IQ4_XS).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Iq4XsLevels(Vector256<sbyte> table, byte* qs, out Vector256<sbyte> l1, out Vector256<sbyte> l2)
    {
        Vector256<byte> bits = Avx.LoadVector256(qs), m4 = Vector256.Create((byte)0x0F);
        Vector256<sbyte> lo = Avx2.Shuffle(table, Avx2.And(bits, m4).AsSByte());
        Vector256<sbyte> hi = Avx2.Shuffle(table, Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), m4).AsSByte());
        l1 = Avx2.Permute2x128(lo, hi, 0x20);
        l2 = Avx2.Permute2x128(lo, hi, 0x31);
    }

    /// <summary>
    /// The 6-bit scales (minus 32) of sub-blocks ib and ib + 1 in every int16: low four bits from byte
    /// <paramref name="sl"/> of scales_l, high two from <paramref name="sh"/> (scales_h shifted right by 2·ib).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Iq4XsScales(int sl, uint sh, out Vector256<short> ls1, out Vector256<short> ls2)
    {
        ls1 = Vector256.Create((short)(((sl & 0xF) | (int)((sh << 4) & 0x30)) - 32));
        ls2 = Vector256.Create((short)(((sl >> 4) | (int)((sh << 2) & 0x30)) - 32));
    }
}
