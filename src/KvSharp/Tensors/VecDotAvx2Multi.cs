using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Four-token variants of the AVX2 kernels for batched matmuls, for the types that have no interleaved layout or
/// kernel of their own (Q5_0, and the types whose single-row kernels keep ggml's eight float lanes per row: IQ4_XS,
/// Q2_K, Q3_K; F16 has
/// <see cref="VecDotAvx2F16.Dot2x4"/>): one weight row against four activation
/// rows, the weight block loaded and unpacked once and reused four times. For each token the arithmetic is exactly the
/// single-token kernel's (same integer lanes, same FMA per block, same final reduction), so every output is
/// bit-identical to <see cref="VecDotAvx2"/>'s. That is what keeps <see cref="MatMul"/> batch-invariant.
/// </summary>
internal static unsafe partial class VecDotAvx2Multi
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
        Reduce4(result, a0, a1, a2, a3);
    }

    /// <summary>
    /// A K-quant super-block's FMA for four tokens (Q8_K rows y + k · yStride, the float scale first):
    /// acc_k = fma(dy_k · d, float(sum_k), acc_k), as the single-token kernels do it per super-block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale4(ref Vector256<float> a0, ref Vector256<float> a1, ref Vector256<float> a2, ref Vector256<float> a3,
        float d, byte* y, nint yStride, Vector256<int> s0, Vector256<int> s1, Vector256<int> s2, Vector256<int> s3)
    {
        a0 = Fma.MultiplyAdd(Vector256.Create(*(float*)y * d), Avx.ConvertToVector256Single(s0), a0);
        a1 = Fma.MultiplyAdd(Vector256.Create(*(float*)(y + yStride) * d), Avx.ConvertToVector256Single(s1), a1);
        a2 = Fma.MultiplyAdd(Vector256.Create(*(float*)(y + 2 * yStride) * d), Avx.ConvertToVector256Single(s2), a2);
        a3 = Fma.MultiplyAdd(Vector256.Create(*(float*)(y + 3 * yStride) * d), Avx.ConvertToVector256Single(s3), a3);
    }

    /// <summary>The single-token kernels' final reduction (<see cref="VecDotAvx2.HSum8"/>) of four tokens' lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Reduce4(float* result, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        result[0] = VecDotAvx2.HSum8(a0);
        result[1] = VecDotAvx2.HSum8(a1);
        result[2] = VecDotAvx2.HSum8(a2);
        result[3] = VecDotAvx2.HSum8(a3);
    }
}
