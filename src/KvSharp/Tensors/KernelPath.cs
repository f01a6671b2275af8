namespace KvSharp.Tensors;

/// <summary>
/// A family of dot-product kernels. Every path computes the same integer sums and the same float operations in the same
/// order per output, so all paths give bit-identical results; they differ only in speed.
/// </summary>
public enum KernelPath
{
    /// <summary>The portable kernels (<see cref="VecDotScalar"/>), emulating the AVX2 lanes with scalar code.</summary>
    Scalar,

    /// <summary>AVX2 + FMA (<see cref="VecDotAvx2"/>, <see cref="VecDotAvx2Interleaved"/>), 256-bit.</summary>
    Avx2,

    /// <summary>
    /// AVX2 with AVX-VNNI's <c>vpdpbusd</c> in the group kernels of Q8_0, IQ4_NL, Q4_0, Q4_1, Q5_0 and Q5_1 and the
    /// one-token kernels of Q4_K, Q5_K and Q6_K (<see cref="KernelPaths.HasVnniKernels"/>); everything else runs <see cref="Avx2"/>.
    /// </summary>
    Avx2Vnni,

    /// <summary>
    /// AVX-512F/BW group kernels (<see cref="VecDotAvx512Interleaved"/>, sixteen rows per 512-bit vector) for Q8_0,
    /// the nibble types, IQ4_NL, MXFP4, Q4_K, Q5_K, Q6_K and F32, and F16's and BF16's widened four-by-four kernels
    /// (<see cref="VecDotAvx512Widened"/>) (<see cref="KernelPaths.HasAvx512Kernels"/>); other types, and the token counts a
    /// type has no such kernel for, run <see cref="Avx2"/>.
    /// </summary>
    Avx512,
}
