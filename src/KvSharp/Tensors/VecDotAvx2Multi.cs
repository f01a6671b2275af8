using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Four-token variants of the AVX2 kernels for batched matmuls: one weight row against four activation rows, the
/// weight block loaded and unpacked once and reused four times. For each token the arithmetic is exactly the
/// single-token kernel's (same integer lanes, same FMA per block, same final reduction), so every output is
/// bit-identical to <see cref="VecDotAvx2"/>'s. That is what keeps <see cref="MatMul"/> batch-invariant.
/// </summary>
internal static unsafe class VecDotAvx2Multi
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulSumI8(Vector256<byte> ax, Vector256<sbyte> x, sbyte* y)
    {
        Vector256<sbyte> sy = Avx2.Sign(Avx.LoadVector256(y), x);
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ax, sy), Vector256.Create((short)1)));
    }

    /// <summary>Four tokens of a Q5_0 row; per token the bits of <see cref="VecDotAvx2.Q5_0"/>.</summary>
    public static void Q5_0x4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int nb = n / 32;
        for (int ib = 0; ib < nb; ib++, x += Q5_0Bytes, y += Q8_0Bytes)
        {
            float dx = F16(x);
            Vector128<byte> t = Sse2.LoadVector128(x + 6);
            Vector256<byte> nib = Avx2.And(Vector256.Create(t, Sse2.ShiftRightLogical(t.AsUInt16(), 4).AsByte()), Vector256.Create((byte)0x0F));
            Vector256<byte> hi = Avx2.AndNot(VecDotAvx2.BytesFromBits32(*(uint*)(x + 2)), Vector256.Create((byte)0xF0));
            Vector256<sbyte> qx = Avx2.Or(nib, hi).AsSByte();
            Vector256<byte> ax = Avx2.Sign(qx, qx).AsByte();
            byte* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
            a0 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y0)), MulSumI8(ax, qx, (sbyte*)(y0 + 2)), a0);
            a1 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y1)), MulSumI8(ax, qx, (sbyte*)(y1 + 2)), a1);
            a2 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y2)), MulSumI8(ax, qx, (sbyte*)(y2 + 2)), a2);
            a3 = Fma.MultiplyAdd(Vector256.Create(dx * F16(y3)), MulSumI8(ax, qx, (sbyte*)(y3 + 2)), a3);
        }
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }

    /// <summary>
    /// Four-token F16 x F16: the weight row is converted to float once per 32 elements and used for all four tokens
    /// (two at a time, to stay within the 16 vector registers); per token the accumulation is
    /// <see cref="VecDotAvx2.DotF16"/>'s exactly.
    /// </summary>
    public static void F16x4(byte* x, byte* y, nint yStride, int n, float* result)
    {
        F16x2((ushort*)x, (ushort*)y, (ushort*)(y + yStride), n, result);
        F16x2((ushort*)x, (ushort*)(y + 2 * yStride), (ushort*)(y + 3 * yStride), n, result + 2);
    }

    private static void F16x2(ushort* x, ushort* y0, ushort* y1, int n, float* result)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        int np = n & ~31;
        for (int i = 0; i < np; i += 32)
        {
            Vector256<float> w0 = VecDotAvx2.HalfToSingle(x + i), w1 = VecDotAvx2.HalfToSingle(x + i + 8);
            Vector256<float> w2 = VecDotAvx2.HalfToSingle(x + i + 16), w3 = VecDotAvx2.HalfToSingle(x + i + 24);
            a0 = Fma.MultiplyAdd(w0, VecDotAvx2.HalfToSingle(y0 + i), a0);
            a1 = Fma.MultiplyAdd(w1, VecDotAvx2.HalfToSingle(y0 + i + 8), a1);
            a2 = Fma.MultiplyAdd(w2, VecDotAvx2.HalfToSingle(y0 + i + 16), a2);
            a3 = Fma.MultiplyAdd(w3, VecDotAvx2.HalfToSingle(y0 + i + 24), a3);
            b0 = Fma.MultiplyAdd(w0, VecDotAvx2.HalfToSingle(y1 + i), b0);
            b1 = Fma.MultiplyAdd(w1, VecDotAvx2.HalfToSingle(y1 + i + 8), b1);
            b2 = Fma.MultiplyAdd(w2, VecDotAvx2.HalfToSingle(y1 + i + 16), b2);
            b3 = Fma.MultiplyAdd(w3, VecDotAvx2.HalfToSingle(y1 + i + 24), b3);
        }
        double s0 = VecDotAvx2.Reduce4(a0, a1, a2, a3), s1 = VecDotAvx2.Reduce4(b0, b1, b2, b3);
        for (int i = np; i < n; i++)
        {
            float w = HalfToFloat(x[i]);
            s0 += w * HalfToFloat(y0[i]);
            s1 += w * HalfToFloat(y1[i]);
        }
        result[0] = (float)s0;
        result[1] = (float)s1;
    }
}
