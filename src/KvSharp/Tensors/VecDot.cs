namespace KvSharp.Tensors;

/// <summary>
/// Dot product of one weight row with one activation row already converted to the weight's vec_dot type
/// (<see cref="GgmlTypes.VecDotType"/>). Quantized types are multiplied block by block in integers and the block
/// results scaled and accumulated in floats in the same lanes and order as ggml's AVX2 ggml_vec_dot_* kernels, so
/// the result reproduces llama.cpp's CPU numerics — except Q8_0, Q4_0 and the K-quants, whose blocks are accumulated
/// in sequence (one FMA per block, Q4_K/Q5_K two, see <see cref="VecDotScalar.Q8_0"/>, <see cref="VecDotScalar.Q4_K"/>) so that <see cref="VecDotAvx2Interleaved"/> can compute
/// eight rows at once, a row per lane, with the same bits.
/// </summary>
/// <remarks>
/// There are two implementations: <see cref="VecDotAvx2"/> (AVX2 + FMA) and <see cref="VecDotScalar"/>, a portable
/// one that emulates the same 8 float lanes with <see cref="MathF.FusedMultiplyAdd"/>. The integer parts are exact
/// and every float operation happens in the same order in both, so the two return bit-identical results.
/// <see cref="VecDotAvx2Multi"/> adds four-token variants (one weight row, four activation rows) that are again
/// bit-identical per token; <see cref="MatMul"/> uses them for batches.
/// Where ggml's C leaves the compiler a choice (GCC contracts <c>s += a*b</c> into an FMA by default), we use the
/// FMA: the Q5_1 min correction and the BF16 body. F32, like Q8_0, Q4_0 and the K-quants, has its own order (two FMA
/// chains per row, <see cref="VecDotScalar.DotF32"/>) so that interleaved rows reproduce it.
/// </remarks>
public static unsafe class VecDot
{
    /// <summary>True when the AVX2 kernels run on this machine.</summary>
    public static bool IsAvx2Supported => KernelPaths.IsAvailable(KernelPath.Avx2);

    /// <summary>Whether the SIMD kernels run (any <see cref="KernelPaths"/> choice but scalar).</summary>
    internal static bool UseAvx2 => KernelPaths.UsesSimd;

    /// <summary>Dot product of the first <paramref name="n"/> elements of a weight row and an activation row.</summary>
    public static float Dot(GgmlType weightType, ReadOnlySpan<byte> weightRow, ReadOnlySpan<byte> activationRow, int n)
    {
        Check(weightType, weightRow.Length, activationRow.Length, n);
        fixed (byte* w = weightRow)
        fixed (byte* a = activationRow)
            return UseAvx2 ? DotUnchecked(weightType, w, a, n, avx2: true) : DotUnchecked(weightType, w, a, n, avx2: false);
    }

    /// <summary>Same as <see cref="Dot"/> on an explicitly chosen implementation (tests compare the two).</summary>
    internal static float Dot(GgmlType weightType, ReadOnlySpan<byte> weightRow, ReadOnlySpan<byte> activationRow, int n, bool avx2)
    {
        Check(weightType, weightRow.Length, activationRow.Length, n);
        if (avx2 && !IsAvx2Supported) throw new PlatformNotSupportedException("AVX2/FMA are not available on this machine");
        fixed (byte* w = weightRow)
        fixed (byte* a = activationRow)
            return DotUnchecked(weightType, w, a, n, avx2);
    }

    internal static void Check(GgmlType weightType, int weightBytes, int activationBytes, int n)
    {
        BlockLayouts.CheckRow(weightType, n, weightBytes, "VecDot weight row");
        BlockLayouts.CheckRow(GgmlTypes.VecDotType(weightType), n, activationBytes, "VecDot activation row");
    }

    /// <summary>The kernel without argument checks; <paramref name="w"/> and <paramref name="a"/> must hold n elements.</summary>
    internal static float DotUnchecked(GgmlType type, byte* w, byte* a, int n, bool avx2) => Kernel(type, avx2)(w, a, n);

    /// <summary>
    /// The kernel for a weight type as a function pointer (w, a, n) -> dot, so a matmul picks it once instead of
    /// switching per row. Both implementations take the element count.
    /// </summary>
    internal static delegate*<byte*, byte*, int, float> Kernel(GgmlType type, bool avx2)
    {
        if (avx2)
        {
            return type switch
            {
                GgmlType.Q8_0 => &Q8_0Avx2,
                GgmlType.Q4_0 => &Q4_0Avx2,
                GgmlType.Q5_0 => &Q5_0Avx2,
                GgmlType.Q5_1 => &Q5_1Avx2,
                GgmlType.Q4_K => &Q4_KAvx2,
                GgmlType.Q5_K => &Q5_KAvx2,
                GgmlType.Q6_K => &Q6_KAvx2,
                GgmlType.Q3_K => &Q3_KAvx2,
                GgmlType.Q2_K => &Q2_KAvx2,
                GgmlType.Q4_1 => &Q4_1Avx2,
                GgmlType.IQ4_NL => &Iq4NlAvx2,
                GgmlType.IQ4_XS => &Iq4XsAvx2,
                GgmlType.MXFP4 => &Mxfp4Avx2,
                GgmlType.F32 => &F32Avx2,
                GgmlType.F16 => &F16Avx2,
                GgmlType.BF16 => &BF16Avx2,
                _ => throw new NotSupportedException($"VecDot: weight type {type} is not supported"),
            };
        }
        return type switch
        {
            GgmlType.Q8_0 => &Q8_0Scalar,
            GgmlType.Q4_0 => &Q4_0Scalar,
            GgmlType.Q5_0 => &Q5_0Scalar,
            GgmlType.Q5_1 => &Q5_1Scalar,
            GgmlType.Q4_K => &Q4_KScalar,
            GgmlType.Q5_K => &Q5_KScalar,
            GgmlType.Q6_K => &Q6_KScalar,
            GgmlType.Q3_K => &Q3_KScalar,
            GgmlType.Q2_K => &Q2_KScalar,
            GgmlType.Q4_1 => &Q4_1Scalar,
            GgmlType.IQ4_NL => &Iq4NlScalar,
            GgmlType.IQ4_XS => &Iq4XsScalar,
            GgmlType.MXFP4 => &Mxfp4Scalar,
            GgmlType.F32 => &F32Scalar,
            GgmlType.F16 => &F16Scalar,
            GgmlType.BF16 => &BF16Scalar,
            _ => throw new NotSupportedException($"VecDot: weight type {type} is not supported"),
        };
    }

    /// <summary>
    /// The four-token kernel (w, a, aStride, n, result[4]) for a weight type, or null when there is none; only AVX2
    /// has them. Each of its four results is bit-identical to <see cref="Kernel"/>'s for that activation row.
    /// </summary>
    internal static delegate*<byte*, byte*, nint, int, float*, void> Kernel4(GgmlType type, bool avx2)
    {
        if (!avx2) return null;
        return type switch
        {
            GgmlType.IQ4_XS => &VecDotAvx2Multi.Iq4Xsx4,
            GgmlType.Q2_K => &VecDotAvx2Multi.Q2_Kx4,
            GgmlType.Q3_K => &VecDotAvx2Multi.Q3_Kx4,
            _ => null,
        };
    }

    private static float Q8_0Avx2(byte* w, byte* a, int n) => VecDotAvx2.Q8_0(w, a, n / 32);
    private static float Q4_0Avx2(byte* w, byte* a, int n) => VecDotAvx2.Q4_0(w, a, n / 32);
    private static float Q5_0Avx2(byte* w, byte* a, int n) => VecDotAvx2.Q5_0(w, a, n / 32);
    private static float Q5_1Avx2(byte* w, byte* a, int n) => VecDotAvx2.Q5_1(w, a, n / 32);
    private static float Q4_KAvx2(byte* w, byte* a, int n) => VecDotAvx2.Q4_K(w, a, n / 256);
    private static float Q5_KAvx2(byte* w, byte* a, int n) => VecDotAvx2.Q5_K(w, a, n / 256);
    private static float Q6_KAvx2(byte* w, byte* a, int n) => VecDotAvx2.Q6_K(w, a, n / 256);
    private static float Q3_KAvx2(byte* w, byte* a, int n) => VecDotAvx2.Q3_K(w, a, n / 256);
    private static float Q2_KAvx2(byte* w, byte* a, int n) => VecDotAvx2.Q2_K(w, a, n / 256);
    private static float Q4_1Avx2(byte* w, byte* a, int n) => VecDotAvx2.Q4_1(w, a, n / 32);
    private static float Iq4NlAvx2(byte* w, byte* a, int n) => VecDotAvx2.Iq4Nl(w, a, n / 32);
    private static float Iq4XsAvx2(byte* w, byte* a, int n) => VecDotAvx2.Iq4Xs(w, a, n / 256);
    private static float Mxfp4Avx2(byte* w, byte* a, int n) => VecDotAvx2.Mxfp4(w, a, n / 32);
    private static float F32Avx2(byte* w, byte* a, int n) => VecDotAvx2.DotF32((float*)w, (float*)a, n);
    private static float F16Avx2(byte* w, byte* a, int n) => VecDotAvx2.DotF16((ushort*)w, (ushort*)a, n);
    private static float BF16Avx2(byte* w, byte* a, int n) => VecDotAvx2.DotBF16((ushort*)w, (ushort*)a, n);
    private static float Q8_0Scalar(byte* w, byte* a, int n) => VecDotScalar.Q8_0(w, a, n / 32);
    private static float Q4_0Scalar(byte* w, byte* a, int n) => VecDotScalar.Q4_0(w, a, n / 32);
    private static float Q5_0Scalar(byte* w, byte* a, int n) => VecDotScalar.Q5_0(w, a, n / 32);
    private static float Q5_1Scalar(byte* w, byte* a, int n) => VecDotScalar.Q5_1(w, a, n / 32);
    private static float Q4_KScalar(byte* w, byte* a, int n) => VecDotScalar.Q4_K(w, a, n / 256);
    private static float Q5_KScalar(byte* w, byte* a, int n) => VecDotScalar.Q5_K(w, a, n / 256);
    private static float Q6_KScalar(byte* w, byte* a, int n) => VecDotScalar.Q6_K(w, a, n / 256);
    private static float Q3_KScalar(byte* w, byte* a, int n) => VecDotScalar.Q3_K(w, a, n / 256);
    private static float Q2_KScalar(byte* w, byte* a, int n) => VecDotScalar.Q2_K(w, a, n / 256);
    private static float Q4_1Scalar(byte* w, byte* a, int n) => VecDotScalar.Q4_1(w, a, n / 32);
    private static float Iq4NlScalar(byte* w, byte* a, int n) => VecDotScalar.Iq4Nl(w, a, n / 32);
    private static float Iq4XsScalar(byte* w, byte* a, int n) => VecDotScalar.Iq4Xs(w, a, n / 256);
    private static float Mxfp4Scalar(byte* w, byte* a, int n) => VecDotScalar.Mxfp4(w, a, n / 32);
    private static float F32Scalar(byte* w, byte* a, int n) => VecDotScalar.DotF32((float*)w, (float*)a, n);
    private static float F16Scalar(byte* w, byte* a, int n) => VecDotScalar.DotF16((ushort*)w, (ushort*)a, n);
    private static float BF16Scalar(byte* w, byte* a, int n) => VecDotScalar.DotBF16((ushort*)w, (ushort*)a, n);
}
