using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>
    /// Q2_K x Q8_K as ggml's AVX2 ggml_vec_dot_q2_K_q8_K (same lanes as <see cref="VecDotScalar.Q2_K"/>): the mins
    /// times the Q8_K block sums with one vpmaddwd and one FMA, then the 2-bit quants times q8 through vpmaddubsw and
    /// vpmaddwd with the sub-block scales, and a second FMA per super-block.
    /// </summary>
    public static float Q2_K(byte* x, byte* y, int nb)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        Vector128<byte> m4 = Vector128.Create((byte)0xF);
        Vector256<byte> m3 = Vector256.Create((byte)3);
        for (int i = 0; i < nb; i++, x += Q2_KBytes, y += Q8_KBytes)
        {
            float dy = *(float*)y;
            Vector128<byte> minsAndScales = Sse2.LoadVector128(x + Q2_K_Scales);
            Vector128<byte> scales8 = Sse2.And(minsAndScales, m4);
            Vector128<byte> mins8 = Sse2.And(Sse2.ShiftRightLogical(minsAndScales.AsUInt16(), 4).AsByte(), m4);
            Vector256<int> prod = Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(mins8.AsSByte()), Avx.LoadVector256((short*)(y + Q8_K_Bsums)));
            acc = Fma.MultiplyAdd(Vector256.Create(-dy * F16(x + Q2_K_Dmin)), Avx.ConvertToVector256Single(prod), acc);

            Vector256<short> all = Avx2.ConvertToVector256Int16(scales8.AsSByte());
            byte* q2 = x + Q2_K_Qs;
            sbyte* q8 = (sbyte*)(y + Q8_K_Qs);
            Vector256<int> sumi = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++, q2 += 32, q8 += 128)
            {
                Vector128<short> half = n == 0 ? all.GetLower() : all.GetUpper();
                Vector256<byte> scales = Vector256.Create(half, half).AsByte();
                Vector256<byte> bits = Avx.LoadVector256(q2);
                Vector256<short> p0 = Avx2.MultiplyAddAdjacent(Avx2.And(bits, m3), Avx.LoadVector256(q8));
                Vector256<short> p1 = Avx2.MultiplyAddAdjacent(Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 2).AsByte(), m3), Avx.LoadVector256(q8 + 32));
                Vector256<short> p2 = Avx2.MultiplyAddAdjacent(Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), m3), Avx.LoadVector256(q8 + 64));
                Vector256<short> p3 = Avx2.MultiplyAddAdjacent(Avx2.And(Avx2.ShiftRightLogical(bits.AsUInt16(), 6).AsByte(), m3), Avx.LoadVector256(q8 + 96));
                Vector256<int> s0 = Avx2.MultiplyAddAdjacent(Avx2.Shuffle(scales, ScalePick(0)).AsInt16(), p0);
                Vector256<int> s1 = Avx2.MultiplyAddAdjacent(Avx2.Shuffle(scales, ScalePick(1)).AsInt16(), p1);
                Vector256<int> s2 = Avx2.MultiplyAddAdjacent(Avx2.Shuffle(scales, ScalePick(2)).AsInt16(), p2);
                Vector256<int> s3 = Avx2.MultiplyAddAdjacent(Avx2.Shuffle(scales, ScalePick(3)).AsInt16(), p3);
                sumi = Avx2.Add(sumi, Avx2.Add(Avx2.Add(s0, s1), Avx2.Add(s2, s3)));
            }
            acc = Fma.MultiplyAdd(Vector256.Create(dy * F16(x + Q2_K_D)), Avx.ConvertToVector256Single(sumi), acc);
        }
        return HSum8(acc);
    }
}
