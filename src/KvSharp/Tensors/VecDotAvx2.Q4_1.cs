using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>Q4_1 x Q8_1 in block-sequential order (<see cref="VecDotScalar.Q4_1"/>).</summary>
    public static float Q4_1(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q4_1Bytes, y += Q8_1Bytes)
        {
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), HSumInt(MulSumU8Pairs(Nibbles32(x + 4), Avx.LoadVector256((sbyte*)(y + 4)))), acc);
            acc = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), acc);
        }
        return acc;
    }
}
