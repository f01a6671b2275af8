using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>
    /// Q3_K x Q8_K as ggml's AVX2 ggml_vec_dot_q3_K_q8_K (same lanes as <see cref="VecDotScalar.Q3_K"/>): the 3-bit
    /// value is taken apart into its low two bits and 4·(high bit clear), both multiplied with vpmaddubsw and
    /// subtracted, then vpmaddwd with the sub-block scales; one FMA per super-block.
    /// </summary>
    public static float Q3_K(byte* x, byte* y, int nb)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, x += Q3_KBytes, y += Q8_KBytes)
        {
            Vector256<short> all = Q3KScales.Signed16(x);
            Vector256<byte> hbits = Avx.LoadVector256(x + Q3_K_Hmask);
            byte* q3 = x + Q3_K_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> sumi = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++, q3 += 32, q8 += 128)
            {
                // Sub-blocks 8n..8n+7 as int16 in both 128-bit halves; group g reads 8n + 2g (low) and 8n + 2g + 1 (high).
                Vector128<short> half = n == 0 ? all.GetLower() : all.GetUpper();
                Vector256<byte> scales = Vector256.Create(half, half).AsByte();
                Vector256<byte> bits = Avx.LoadVector256(q3);
                Vector256<int> p0 = Q3_KGroup(bits, hbits, q8, scales, 0);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Vector256<int> p1 = Q3_KGroup(Avx2.ShiftRightLogical(bits.AsUInt16(), 2).AsByte(), hbits, q8 + 32, scales, 1);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Vector256<int> p2 = Q3_KGroup(Avx2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), hbits, q8 + 64, scales, 2);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Vector256<int> p3 = Q3_KGroup(Avx2.ShiftRightLogical(bits.AsUInt16(), 6).AsByte(), hbits, q8 + 96, scales, 3);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                sumi = Avx2.Add(sumi, Avx2.Add(Avx2.Add(p0, p1), Avx2.Add(p2, p3)));
            }
            acc = Fma.MultiplyAdd(Vector256.Create(*(float*)y * F16(x + Q3_K_D)), Avx.ConvertToVector256Single(sumi), acc);
        }
        return HSum8(acc);
    }

    /// <summary>
    /// One group of 32: (low2 − 4·!hbit) · q8 in int16 pairs (both products through vpmaddubsw, then subtracted:
    /// exact, each pair is at most 2·4·128), times the group's two sub-block scales into 8 int32 lanes.
    /// <paramref name="low2"/> and <paramref name="hbit"/> have the group's two low bits and its high bit at the
    /// bottom of each byte (the hmask shifted right by one per group; 16-bit shifts, so other bytes' bits leak in at
    /// the top, which the masks drop).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q3_KGroup(Vector256<byte> low2, Vector256<byte> hbit, sbyte* q8, Vector256<byte> scales, int g)
    {
        Vector256<byte> ql = Avx2.And(low2, Vector256.Create((byte)3));
        Vector256<byte> qh = Avx2.ShiftLeftLogical(Avx2.AndNot(hbit, Vector256.Create((byte)1)).AsUInt16(), 2).AsByte();
        Vector256<sbyte> q8v = Avx.LoadVector256(q8);
        Vector256<short> p16 = Avx2.Subtract(Avx2.MultiplyAddAdjacent(ql, q8v), Avx2.MultiplyAddAdjacent(qh, q8v));
        return Avx2.MultiplyAddAdjacent(Avx2.Shuffle(scales, ScalePick(g)).AsInt16(), p16);
    }

    /// <summary>
    /// The vpshufb control that takes, from eight int16 scales repeated in both 128-bit halves, scale 2g into every
    /// int16 of the low half and 2g + 1 into the high half (ggml get_scale_shuffle_q3k): group g's two sub-blocks of 16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> ScalePick(int g) =>
        Vector256.Create(Vector128.Create((ushort)(0x0100 + 0x0404 * g)), Vector128.Create((ushort)(0x0302 + 0x0404 * g))).AsByte();
}
