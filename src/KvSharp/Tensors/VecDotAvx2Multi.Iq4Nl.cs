using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Multi
{
    /// <summary>
    /// Four tokens of an IQ4_NL row; per token the bits of <see cref="VecDotAvx2.Iq4Nl"/>: even blocks into one
    /// accumulator, odd blocks into another, added and reduced, an odd last block by a scalar FMA. Each block's level
    /// lookup and |levels| are computed once for the four tokens.
    /// </summary>
    /// <remarks>
    /// Why one row by four tokens and not eight interleaved rows (a row per lane) as Q4_0 has: the single-row kernel
    /// keeps ggml's order (eight float lanes per row, two accumulators), which a lane-per-row kernel can only
    /// reproduce with sixteen float accumulators per row group and token; the multiplies, conversions and FMAs per
    /// row and token are the same either way, so sharing the lookup across tokens is what there is to gain.
    /// </remarks>
    public static void Iq4Nlx4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        Vector128<sbyte> table = VecDotAvx2.Iq4Table;
        byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        int nb = n / QK, ib = 0;
        for (; ib + 1 < nb; ib += 2, x += 2 * IQ4_NLBytes, y0 += 2 * Q8_0Bytes, y1 += 2 * Q8_0Bytes, y2 += 2 * Q8_0Bytes, y3 += 2 * Q8_0Bytes)
        {
            Vector256<sbyte> q = VecDotAvx2.Iq4Levels(table, x + 2), r = VecDotAvx2.Iq4Levels(table, x + IQ4_NLBytes + 2);
            Vector256<byte> aq = Avx2.Sign(q, q).AsByte(), ar = Avx2.Sign(r, r).AsByte();
            float dq = F16(x), dr = F16(x + IQ4_NLBytes);
            a0 = Fma.MultiplyAdd(Vector256.Create(F16(y0) * dq), MulSumI8(aq, q, (sbyte*)(y0 + 2)), a0);
            b0 = Fma.MultiplyAdd(Vector256.Create(F16(y0 + Q8_0Bytes) * dr), MulSumI8(ar, r, (sbyte*)(y0 + Q8_0Bytes + 2)), b0);
            a1 = Fma.MultiplyAdd(Vector256.Create(F16(y1) * dq), MulSumI8(aq, q, (sbyte*)(y1 + 2)), a1);
            b1 = Fma.MultiplyAdd(Vector256.Create(F16(y1 + Q8_0Bytes) * dr), MulSumI8(ar, r, (sbyte*)(y1 + Q8_0Bytes + 2)), b1);
            a2 = Fma.MultiplyAdd(Vector256.Create(F16(y2) * dq), MulSumI8(aq, q, (sbyte*)(y2 + 2)), a2);
            b2 = Fma.MultiplyAdd(Vector256.Create(F16(y2 + Q8_0Bytes) * dr), MulSumI8(ar, r, (sbyte*)(y2 + Q8_0Bytes + 2)), b2);
            a3 = Fma.MultiplyAdd(Vector256.Create(F16(y3) * dq), MulSumI8(aq, q, (sbyte*)(y3 + 2)), a3);
            b3 = Fma.MultiplyAdd(Vector256.Create(F16(y3 + Q8_0Bytes) * dr), MulSumI8(ar, r, (sbyte*)(y3 + Q8_0Bytes + 2)), b3);
        }
        result[0] = VecDotAvx2.HSum8(Avx.Add(a0, b0));
        result[1] = VecDotAvx2.HSum8(Avx.Add(a1, b1));
        result[2] = VecDotAvx2.HSum8(Avx.Add(a2, b2));
        result[3] = VecDotAvx2.HSum8(Avx.Add(a3, b3));
        if (ib < nb)
        {
            Vector256<sbyte> q = VecDotAvx2.Iq4Levels(table, x + 2);
            Vector256<byte> aq = Avx2.Sign(q, q).AsByte();
            float dq = F16(x);
            result[0] = Iq4NlLastBlock(result[0], aq, q, dq, y0);
            result[1] = Iq4NlLastBlock(result[1], aq, q, dq, y1);
            result[2] = Iq4NlLastBlock(result[2], aq, q, dq, y2);
            result[3] = Iq4NlLastBlock(result[3], aq, q, dq, y3);
        }
    }

    /// <summary>ggml's tail for an odd last block: the block's exact integer dot added with one scalar FMA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Iq4NlLastBlock(float sum, Vector256<byte> aq, Vector256<sbyte> q, float dq, byte* y)
    {
        Vector256<sbyte> sy = Avx2.Sign(Avx.LoadVector256((sbyte*)(y + 2)), q);
        int dot = VecDotAvx2.HSumInt(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aq, sy), Vector256.Create((short)1)));
        return MathF.FusedMultiplyAdd(F16(y) * dq, dot, sum);
    }
}
