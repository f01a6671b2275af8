using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// Four-token variants of the AVX2 kernels for batched matmuls, for the types that have no interleaved layout or
/// kernel of their own (the types whose single-row kernels keep ggml's eight float lanes per row: IQ4_XS, Q2_K, Q3_K;
/// F16 and BF16 have
/// <see cref="VecDotAvx2Widened"/>): one weight row against four activation
/// rows, the weight block loaded and unpacked once and reused four times. For each token the arithmetic is exactly the
/// single-token kernel's (same integer lanes, same FMA per block, same final reduction), so every output is
/// bit-identical to <see cref="VecDotAvx2"/>'s. That is what keeps <see cref="MatMul"/> batch-invariant.
/// </summary>
internal static unsafe partial class VecDotAvx2Multi
{
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
