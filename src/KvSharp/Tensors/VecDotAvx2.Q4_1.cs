using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>Q4_1 x Q8_1 as ggml_vec_dot_q4_1_q8_1 (AVX2); see <see cref="VecDotScalar.Q4_1"/>.</summary>
    public static float Q4_1(byte* x, byte* y, int nb)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        float summs = 0;
        for (int ib = 0; ib < nb; ib++, x += Q4_1Bytes, y += Q8_1Bytes)
        {
            summs = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), summs);
            Vector256<sbyte> qy = Avx.LoadVector256((sbyte*)(y + 4));
            acc = Fma.MultiplyAdd(Vector256.Create(F16(x) * F16(y)), Avx.ConvertToVector256Single(MulSumU8Pairs(Nibbles32(x + 4), qy)), acc);
        }
        return HSum8(acc) + summs;
    }
}
