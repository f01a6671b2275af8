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
    /// <see cref="VecDotScalar.Iq4Xs"/>. The levels of two sub-blocks come from one 32-byte load (<see cref="Iq4XsLevels"/>),
    /// the eight scales from one 64-bit word per super-block (<see cref="Iq4XsAllScales"/>) instead of ggml's scalar
    /// arithmetic and broadcast per sub-block: 1.14-1.21x for the whole kernel (in-process A/B against the per-sub-block
    /// scales, one thread, 41 alternated rounds of 8 passes, 2048x2048, 768x2048, 2048x768).
    /// </summary>
    public static float Iq4Xs(byte* x, byte* y, int nb)
    {
        Vector256<sbyte> table = Iq4Table2;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, x += IQ4_XSBytes, y += Q8_KBytes)
        {
            Vector256<byte> all = Iq4XsAllScales(x);
            byte* qs = x + IQ4_XS_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> sumi1 = Vector256<int>.Zero, sumi2 = Vector256<int>.Zero;
            Iq4XsPair(table, qs, q8, all, 0, ref sumi1, ref sumi2);
            Iq4XsPair(table, qs + 32, q8 + 64, all, 2, ref sumi1, ref sumi2);
            Iq4XsPair(table, qs + 64, q8 + 128, all, 4, ref sumi1, ref sumi2);
            Iq4XsPair(table, qs + 96, q8 + 192, all, 6, ref sumi1, ref sumi2);
            acc = Fma.MultiplyAdd(Vector256.Create(F16(x) * *(float*)y), Avx.ConvertToVector256Single(Avx2.Add(sumi1, sumi2)), acc);
        }
        return HSum8(acc);
    }

    /// <summary>Sub-blocks <paramref name="ib"/> and ib + 1 (nibbles at <paramref name="qs"/>) into ggml's sumi1 and sumi2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Iq4XsPair(Vector256<sbyte> table, byte* qs, sbyte* q8, Vector256<byte> all, int ib, ref Vector256<int> sumi1, ref Vector256<int> sumi2)
    {
        Iq4XsLevels(table, qs, out Vector256<sbyte> l1, out Vector256<sbyte> l2);
        Vector256<short> p1 = MulAddI8(l1, Avx.LoadVector256(q8));
        Vector256<short> p2 = MulAddI8(l2, Avx.LoadVector256(q8 + 32));
        sumi1 = Avx2.Add(Avx2.MultiplyAddAdjacent(p1, Iq4XsScaleAt(all, ib)), sumi1);
        sumi2 = Avx2.Add(Avx2.MultiplyAddAdjacent(p2, Iq4XsScaleAt(all, ib + 1)), sumi2);
    }

    /// <summary>
    /// The eight 6-bit scales minus 32 of an IQ4_XS super-block as int16 lanes 0..7 of both 128-bit halves: the
    /// scales_l nibbles and scales_h bit pairs spread to one byte per sub-block in a 64-bit word (shift-or-mask steps).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Iq4XsAllScales(byte* x)
    {
        ulong l = *(uint*)(x + IQ4_XS_ScalesL), h = *(ushort*)(x + IQ4_XS_ScalesH);
        l = (l | (l << 16)) & 0x0000FFFF0000FFFFul;
        l = (l | (l << 8)) & 0x00FF00FF00FF00FFul;
        l = (l | (l << 4)) & 0x0F0F0F0F0F0F0F0Ful;
        h = (h | (h << 24)) & 0x000000FF000000FFul;
        h = (h | (h << 12)) & 0x000F000F000F000Ful;
        h = (h | (h << 6)) & 0x0303030303030303ul;
        Vector128<short> s = Sse2.Subtract(Sse41.ConvertToVector128Int16(Vector128.CreateScalar(l | (h << 4)).AsByte()), Vector128.Create((short)32));
        return Vector256.Create(s, s).AsByte();
    }

    /// <summary>Scale <paramref name="k"/> of <see cref="Iq4XsAllScales"/> in every int16 (one vpshufb).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> Iq4XsScaleAt(Vector256<byte> all, int k)
        => Avx2.Shuffle(all, Vector256.Create((ushort)(0x0100 + 0x0202 * k)).AsByte()).AsInt16();

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
}
