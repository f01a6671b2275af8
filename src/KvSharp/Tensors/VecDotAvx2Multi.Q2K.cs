using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Multi
{
    /// <summary>
    /// Four tokens of a Q2_K row; per token the bits of <see cref="VecDotAvx2.Q2_K"/> (the min FMA, then the quant
    /// FMA, per super-block): the scales, mins and each group's 2-bit quants are unpacked once and shared. Not eight
    /// rows in lanes for the reason given at <see cref="Iq4Xsx4"/>.
    /// </summary>
    public static void Q2_Kx4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector128<byte> m4 = Vector128.Create((byte)0xF);
        Vector256<byte> m3 = Vector256.Create((byte)3);
        nint t1 = yStride, t2 = 2 * yStride, t3 = 3 * yStride;
        int nb = n / QK_K;
        for (int i = 0; i < nb; i++, x += Q2_KBytes, y += Q8_KBytes)
        {
            Vector128<byte> minsAndScales = Sse2.LoadVector128(x + Q2_K_Scales);
            Vector128<byte> scales8 = Sse2.And(minsAndScales, m4);
            Vector256<short> mins = Avx2.ConvertToVector256Int16(Sse2.And(Sse2.ShiftRightLogical(minsAndScales.AsUInt16(), 4).AsByte(), m4).AsSByte());
            float dmin = F16(x + Q2_K_Dmin);
            a0 = Q2_KMins(a0, mins, dmin, y);
            a1 = Q2_KMins(a1, mins, dmin, y + t1);
            a2 = Q2_KMins(a2, mins, dmin, y + t2);
            a3 = Q2_KMins(a3, mins, dmin, y + t3);

            Vector256<short> all = Avx2.ConvertToVector256Int16(scales8.AsSByte());
            byte* q2 = x + Q2_K_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int h = 0; h < 2; h++, q2 += 32, q8 += 128)
            {
                Vector128<short> half = h == 0 ? all.GetLower() : all.GetUpper();
                Vector256<byte> scales = Vector256.Create(half, half).AsByte();
                Vector256<ushort> bits = Avx.LoadVector256((ushort*)q2);
                Q2_KGroup(bits, m3, scales, 0, q8, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                Q2_KGroup(Avx2.ShiftRightLogical(bits, 2), m3, scales, 1, q8 + 32, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                Q2_KGroup(Avx2.ShiftRightLogical(bits, 4), m3, scales, 2, q8 + 64, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
                Q2_KGroup(Avx2.ShiftRightLogical(bits, 6), m3, scales, 3, q8 + 96, t1, t2, t3, ref s0, ref s1, ref s2, ref s3);
            }
            Scale4(ref a0, ref a1, ref a2, ref a3, F16(x + Q2_K_D), y, yStride, s0, s1, s2, s3);
        }
        Reduce4(result, a0, a1, a2, a3);
    }

    /// <summary>
    /// Group <paramref name="g"/> of 32 (its two bits at the bottom of each byte of <paramref name="bits"/>; 16-bit
    /// shifts, masked to bytes) times four tokens' bytes at <paramref name="q8"/> (+ t1, t2, t3), by the group's two
    /// sub-block scales. Written out per group so that <see cref="VecDotAvx2.ScalePick"/> is a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q2_KGroup(Vector256<ushort> bits, Vector256<byte> m3, Vector256<byte> scales, int g, sbyte* q8, nint t1, nint t2, nint t3,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        Vector256<byte> q = Avx2.And(bits.AsByte(), m3);
        Vector256<short> sc = Avx2.Shuffle(scales, VecDotAvx2.ScalePick(g)).AsInt16();
        s0 = Avx2.Add(s0, Avx2.MultiplyAddAdjacent(sc, Avx2.MultiplyAddAdjacent(q, Avx.LoadVector256(q8))));
        s1 = Avx2.Add(s1, Avx2.MultiplyAddAdjacent(sc, Avx2.MultiplyAddAdjacent(q, Avx.LoadVector256(q8 + t1))));
        s2 = Avx2.Add(s2, Avx2.MultiplyAddAdjacent(sc, Avx2.MultiplyAddAdjacent(q, Avx.LoadVector256(q8 + t2))));
        s3 = Avx2.Add(s3, Avx2.MultiplyAddAdjacent(sc, Avx2.MultiplyAddAdjacent(q, Avx.LoadVector256(q8 + t3))));
    }

    /// <summary>One token's min term of <see cref="VecDotAvx2.Q2_K"/>: acc = fma(−dy·dmin, mins · bsums, acc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q2_KMins(Vector256<float> acc, Vector256<short> mins, float dmin, byte* y)
    {
        Vector256<int> prod = Avx2.MultiplyAddAdjacent(mins, Avx.LoadVector256((short*)(y + Q8_K_Bsums)));
        return Fma.MultiplyAdd(Vector256.Create(-*(float*)y * dmin), Avx.ConvertToVector256Single(prod), acc);
    }
}
