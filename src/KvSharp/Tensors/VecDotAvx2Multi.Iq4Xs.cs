using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Multi
{
    /// <summary>
    /// Four tokens of an IQ4_XS row; per token the bits of <see cref="VecDotAvx2.Iq4Xs"/>: the level lookup, |levels|
    /// and the sub-block scales are computed once and shared. Why not eight rows in lanes as Q4_K's
    /// <see cref="VecDotAvx2Interleaved"/>: ggml's order keeps eight float lanes per row (each lane's own FMA chain,
    /// summed at the end), so a lane-per-row layout would need eight accumulators per row and token and still one
    /// vpmaddwd per 32 products; sharing the unpacking four ways saves the same work with the row's own layout.
    /// The even and odd sub-blocks' int32 lanes (ggml's sumi1, sumi2) are summed into one vector here: integer sums,
    /// exact in any order (|lane| &lt; 2^24), so the converted float is the same.
    /// </summary>
    public static void Iq4Xsx4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        Vector256<sbyte> table = VecDotAvx2.Iq4Table2;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int nb = n / QK_K;
        for (int i = 0; i < nb; i++, x += IQ4_XSBytes, y += Q8_KBytes)
        {
            Vector256<byte> all = VecDotAvx2.Iq4XsAllScales(x);
            byte* qs = x + IQ4_XS_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            Iq4XsQuarter(table, qs, q8, yStride, all, 0, ref s0, ref s1, ref s2, ref s3);
            Iq4XsQuarter(table, qs + 32, q8 + 64, yStride, all, 2, ref s0, ref s1, ref s2, ref s3);
            Iq4XsQuarter(table, qs + 64, q8 + 128, yStride, all, 4, ref s0, ref s1, ref s2, ref s3);
            Iq4XsQuarter(table, qs + 96, q8 + 192, yStride, all, 6, ref s0, ref s1, ref s2, ref s3);
            Scale4(ref a0, ref a1, ref a2, ref a3, F16(x), y, yStride, s0, s1, s2, s3);
        }
        Reduce4(result, a0, a1, a2, a3);
    }

    /// <summary>Sub-blocks <paramref name="ib"/> and ib + 1 (nibbles at <paramref name="qs"/>) for four tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Iq4XsQuarter(Vector256<sbyte> table, byte* qs, sbyte* q8, nint yStride, Vector256<byte> all, int ib,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        Vector256<short> ls1 = VecDotAvx2.Iq4XsScaleAt(all, ib), ls2 = VecDotAvx2.Iq4XsScaleAt(all, ib + 1);
        VecDotAvx2.Iq4XsLevels(table, qs, out Vector256<sbyte> l1, out Vector256<sbyte> l2);
        Vector256<byte> m1 = Avx2.Sign(l1, l1).AsByte(), m2 = Avx2.Sign(l2, l2).AsByte();
        s0 = Iq4XsPair(s0, m1, l1, ls1, m2, l2, ls2, q8);
        s1 = Iq4XsPair(s1, m1, l1, ls1, m2, l2, ls2, q8 + yStride);
        s2 = Iq4XsPair(s2, m1, l1, ls1, m2, l2, ls2, q8 + 2 * yStride);
        s3 = Iq4XsPair(s3, m1, l1, ls1, m2, l2, ls2, q8 + 3 * yStride);
    }

    /// <summary>
    /// One token's two sub-blocks (levels l1, l2 with |l| in m1, m2; scales ls1, ls2) against its 64 bytes at
    /// <paramref name="q8"/>, added to <paramref name="sum"/>: ggml's mul_add_epi8, then vpmaddwd by the scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Iq4XsPair(Vector256<int> sum, Vector256<byte> m1, Vector256<sbyte> l1, Vector256<short> ls1,
        Vector256<byte> m2, Vector256<sbyte> l2, Vector256<short> ls2, sbyte* q8)
    {
        Vector256<short> p1 = Avx2.MultiplyAddAdjacent(m1, Avx2.Sign(Avx.LoadVector256(q8), l1));
        Vector256<short> p2 = Avx2.MultiplyAddAdjacent(m2, Avx2.Sign(Avx.LoadVector256(q8 + 32), l2));
        return Avx2.Add(sum, Avx2.Add(Avx2.MultiplyAddAdjacent(p1, ls1), Avx2.MultiplyAddAdjacent(p2, ls2)));
    }
}
