using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// Dot product of one weight row with one activation row already converted to the weight's vec_dot type
/// (<see cref="GgmlTypes.VecDotType"/>). Quantized types are multiplied block by block in integers and the block
/// results scaled and accumulated in floats in the same lanes and order as ggml's AVX2 ggml_vec_dot_* kernels, so
/// the result reproduces llama.cpp's CPU numerics.
/// </summary>
/// <remarks>
/// There are two implementations: <see cref="VecDotAvx2"/> (AVX2 + FMA) and <see cref="VecDotScalar"/>, a portable
/// one that emulates the same 8 float lanes with <see cref="MathF.FusedMultiplyAdd"/>. The integer parts are exact
/// and every float operation happens in the same order in both, so the two return bit-identical results.
/// </remarks>
public static unsafe class VecDot
{
    /// <summary>True when the AVX2 kernels run on this machine.</summary>
    public static bool IsAvx2Supported { get; } = Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Tests set this to run everything (including <see cref="MatMul"/>) on the portable kernels.</summary>
    internal static volatile bool ForceFallback;

    internal static bool UseAvx2 => IsAvx2Supported && !ForceFallback;

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
        BlockLayouts.CheckRow(weightType, n, weightBytes, $"VecDot weight row ({weightType})");
        BlockLayouts.CheckRow(GgmlTypes.VecDotType(weightType), n, activationBytes, $"VecDot activation row ({GgmlTypes.VecDotType(weightType)})");
    }

    /// <summary>The kernel without argument checks; <paramref name="w"/> and <paramref name="a"/> must hold n elements.</summary>
    internal static float DotUnchecked(GgmlType type, byte* w, byte* a, int n, bool avx2)
    {
        if (avx2)
        {
            return type switch
            {
                GgmlType.Q8_0 => VecDotAvx2.Q8_0(w, a, n / 32),
                GgmlType.Q4_0 => VecDotAvx2.Q4_0(w, a, n / 32),
                GgmlType.Q5_0 => VecDotAvx2.Q5_0(w, a, n / 32),
                GgmlType.Q5_1 => VecDotAvx2.Q5_1(w, a, n / 32),
                GgmlType.Q4_K => VecDotAvx2.Q4_K(w, a, n / 256),
                GgmlType.Q5_K => VecDotAvx2.Q5_K(w, a, n / 256),
                GgmlType.Q6_K => VecDotAvx2.Q6_K(w, a, n / 256),
                GgmlType.F32 => VecDotAvx2.DotF32((float*)w, (float*)a, n),
                GgmlType.F16 => VecDotAvx2.DotF16((ushort*)w, (ushort*)a, n),
                GgmlType.BF16 => VecDotAvx2.DotBF16((ushort*)w, (ushort*)a, n),
                _ => throw new NotSupportedException($"VecDot: weight type {type} is not supported"),
            };
        }
        return type switch
        {
            GgmlType.Q8_0 => VecDotScalar.Q8_0(w, a, n / 32),
            GgmlType.Q4_0 => VecDotScalar.Q4_0(w, a, n / 32),
            GgmlType.Q5_0 => VecDotScalar.Q5_0(w, a, n / 32),
            GgmlType.Q5_1 => VecDotScalar.Q5_1(w, a, n / 32),
            GgmlType.Q4_K => VecDotScalar.Q4_K(w, a, n / 256),
            GgmlType.Q5_K => VecDotScalar.Q5_K(w, a, n / 256),
            GgmlType.Q6_K => VecDotScalar.Q6_K(w, a, n / 256),
            GgmlType.F32 => VecDotScalar.DotF32((float*)w, (float*)a, n),
            GgmlType.F16 => VecDotScalar.DotF16((ushort*)w, (ushort*)a, n),
            GgmlType.BF16 => VecDotScalar.DotBF16((ushort*)w, (ushort*)a, n),
            _ => throw new NotSupportedException($"VecDot: weight type {type} is not supported"),
        };
    }
}
