using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Multi
{
    /// <summary>
    /// Four tokens of a Q4_1 row; per token the bits of <see cref="VecDotAvx2.Q4_1"/>: eight float lanes with one FMA
    /// by dx·dy per block, the min term m·s summed apart by scalar FMAs and added after the lanes are reduced. Each
    /// block's nibbles and scales are unpacked once for the four tokens (why not interleaved rows: see
    /// <see cref="Iq4Nlx4"/>).
    /// </summary>
    public static void Q4_1x4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
        int nb = n / QK;
        for (int ib = 0; ib < nb; ib++, x += Q4_1Bytes, y0 += Q8_1Bytes, y1 += Q8_1Bytes, y2 += Q8_1Bytes, y3 += Q8_1Bytes)
        {
            float dx = F16(x), mx = F16(x + 2);
            Vector256<byte> qx = VecDotAvx2.Nibbles32(x + 4);
            m0 = MathF.FusedMultiplyAdd(mx, F16(y0 + 2), m0);
            a0 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y0)), MulSumU8(qx, (sbyte*)(y0 + 4)), a0);
            m1 = MathF.FusedMultiplyAdd(mx, F16(y1 + 2), m1);
            a1 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y1)), MulSumU8(qx, (sbyte*)(y1 + 4)), a1);
            m2 = MathF.FusedMultiplyAdd(mx, F16(y2 + 2), m2);
            a2 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y2)), MulSumU8(qx, (sbyte*)(y2 + 4)), a2);
            m3 = MathF.FusedMultiplyAdd(mx, F16(y3 + 2), m3);
            a3 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y3)), MulSumU8(qx, (sbyte*)(y3 + 4)), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0) + m0;
        result[1] = VecDotAvx2.HSum8(a1) + m1;
        result[2] = VecDotAvx2.HSum8(a2) + m2;
        result[3] = VecDotAvx2.HSum8(a3) + m3;
    }

    /// <summary>Unsigned weight bytes times a token's 32 signed bytes, as float lanes (ggml mul_sum_us8_pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulSumU8(Vector256<byte> ux, sbyte* y)
        => Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ux, Avx.LoadVector256(y)), Vector256.Create((short)1)));
}
