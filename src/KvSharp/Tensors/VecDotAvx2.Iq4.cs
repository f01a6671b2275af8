using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>
    /// The 32 levels of one IQ4 block's 16 nibble bytes, looked up with one vpshufb from the level table in both
    /// halves (ggml does two 128-bit shuffles and joins them; the bytes are the same).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Iq4Levels(Vector256<sbyte> table, byte* qs) => Avx2.Shuffle(table, Nibbles32(qs).AsSByte());

    private static Vector256<sbyte> Iq4Table => Vector256.Create(Vector128.Create(Iq4NlValues));

    /// <summary>IQ4_NL x Q8_0 as ggml_vec_dot_iq4_nl_q8_0 (AVX2): two block accumulators, see <see cref="VecDotScalar.Iq4Nl"/>.</summary>
    public static float Iq4Nl(byte* x, byte* y, int nb)
    {
        Vector256<sbyte> table = Iq4Table;
        Vector256<float> acc1 = Vector256<float>.Zero, acc2 = Vector256<float>.Zero;
        int ib = 0;
        for (; ib + 1 < nb; ib += 2, x += 2 * IQ4_NLBytes, y += 2 * Q8_0Bytes)
        {
            Vector256<int> p1 = MulSumI8Pairs(Iq4Levels(table, x + 2), Avx.LoadVector256((sbyte*)(y + 2)));
            Vector256<int> p2 = MulSumI8Pairs(Iq4Levels(table, x + IQ4_NLBytes + 2), Avx.LoadVector256((sbyte*)(y + Q8_0Bytes + 2)));
            acc1 = Fma.MultiplyAdd(Vector256.Create(F16(y) * F16(x)), Avx.ConvertToVector256Single(p1), acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Create(F16(y + Q8_0Bytes) * F16(x + IQ4_NLBytes)), Avx.ConvertToVector256Single(p2), acc2);
        }
        float sum = HSum8(Avx.Add(acc1, acc2));
        if (ib < nb)
            sum = MathF.FusedMultiplyAdd(F16(y) * F16(x), HSumInt(MulSumI8Pairs(Iq4Levels(table, x + 2), Avx.LoadVector256((sbyte*)(y + 2)))), sum);
        return sum;
    }
}
