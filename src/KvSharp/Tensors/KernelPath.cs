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

    /// <summary>AVX2 with AVX-VNNI's <c>vpdpbusd</c> in the Q8_0 group kernels; other types run <see cref="Avx2"/>.</summary>
    Avx2Vnni,

    /// <summary>
    /// AVX-512F/BW group kernels for Q8_0 and Q4_0 (<see cref="VecDotAvx512Interleaved"/>, sixteen rows per 512-bit
    /// vector); other types run <see cref="Avx2"/>.
    /// </summary>
    Avx512,
}
