using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Multi
{
    /// <summary>
    /// Four tokens of a Q3_K row; per token the bits of <see cref="VecDotAvx2.Q3_K"/>: the scales and each group's
    /// low two bits and 4·(high bit clear) are unpacked once and shared, then per token both vpmaddubsw, their
    /// difference and the vpmaddwd by the group's scales. Not eight rows in lanes for the reason given at
    /// <see cref="Iq4Xsx4"/>.
    /// </summary>
    public static void Q3_Kx4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        nint t1 = yStride, t2 = 2 * yStride, t3 = 3 * yStride;
        int nb = n / QK_K;
        for (int i = 0; i < nb; i++, x += Q3_KBytes, y += Q8_KBytes)
        {
            Vector256<short> all = Q3KScales.Signed16(x);
            Vector256<byte> hbits = Avx.LoadVector256(x + Q3_K_Hmask);
            byte* q3 = x + Q3_K_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int h = 0; h < 2; h++, q3 += 32, q8 += 128)
            {
                Vector128<short> half = h == 0 ? all.GetLower() : all.GetUpper();
                Vector256<byte> scales = Vector256.Create(half, half).AsByte();
                Vector256<ushort> bits = Avx.LoadVector256((ushort*)q3);
                // As VecDotAvx2.Q3_K: the hmask shifted right once per group (16-bit shifts, masked to bytes).
                Q3_KGroup(bits, hbits, scales, 0, q8, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Q3_KGroup(Avx2.ShiftRightLogical(bits, 2), hbits, scales, 1, q8 + 32, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Q3_KGroup(Avx2.ShiftRightLogical(bits, 4), hbits, scales, 2, q8 + 64, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
                Q3_KGroup(Avx2.ShiftRightLogical(bits, 6), hbits, scales, 3, q8 + 96, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                hbits = Avx2.ShiftRightLogical(hbits.AsUInt16(), 1).AsByte();
            }
            Scale4(ref a0, ref a1, ref a2, ref a3, F16(x + Q3_K_D), y, yStride, s0, s1, s2, s3);
        }
        Reduce4(result, a0, a1, a2, a3);
    }

    /// <summary>
    /// Group <paramref name="g"/> of 32 (low two bits and high bit at the bottom of each byte of <paramref name="low2"/>,
    /// <paramref name="hbit"/>) times four tokens' bytes at <paramref name="q8"/> (+ t1, t2, t3): (ql − 4·!hbit) · q8 in
    /// int16 pairs (both through vpmaddubsw, exact), by the group's two sub-block scales into int32 lanes. Written out
    /// per group so that <see cref="VecDotAvx2.ScalePick"/> is a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q3_KGroup(Vector256<ushort> low2, Vector256<byte> hbit, Vector256<byte> scales, int g, sbyte* q8, nint t1, nint t2, nint t3,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        Vector256<byte> ql = Avx2.And(low2.AsByte(), Vector256.Create((byte)3));
        Vector256<byte> qh = Avx2.ShiftLeftLogical(Avx2.AndNot(hbit, Vector256.Create((byte)1)).AsUInt16(), 2).AsByte();
        Vector256<short> sc = Avx2.Shuffle(scales, VecDotAvx2.ScalePick(g)).AsInt16();
        s0 = Avx2.Add(s0, Q3_KTimes(ql, qh, sc, Avx.LoadVector256(q8)));
        s1 = Avx2.Add(s1, Q3_KTimes(ql, qh, sc, Avx.LoadVector256(q8 + t1)));
        s2 = Avx2.Add(s2, Q3_KTimes(ql, qh, sc, Avx.LoadVector256(q8 + t2)));
        s3 = Avx2.Add(s3, Q3_KTimes(ql, qh, sc, Avx.LoadVector256(q8 + t3)));
    }

    /// <summary>(ql − qh) · q8 in int16 pairs (both through vpmaddubsw, exact), times the group's scales into int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q3_KTimes(Vector256<byte> ql, Vector256<byte> qh, Vector256<short> sc, Vector256<sbyte> q8)
        => Avx2.MultiplyAddAdjacent(sc, Avx2.Subtract(Avx2.MultiplyAddAdjacent(ql, q8), Avx2.MultiplyAddAdjacent(qh, q8)));
}
