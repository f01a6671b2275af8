using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// The signed-weight group kernels (Q8_0, IQ4_NL) on AVX-VNNI (<c>vpdpbusd</c>: unsigned bytes x signed bytes, four
/// products summed into each int32 lane in one instruction), used on <see cref="KernelPath.Avx2Vnni"/>
/// (<see cref="KernelPaths"/>); and Q4_K's and Q5_K's one-token kernels, whose steps add into int32 lanes and whose
/// scales multiply with vpmulld (their four-token products stay on vpmaddubsw: see <see cref="QuantKx4"/>). The
/// nibble types' VNNI kernels are <see cref="NibbleKernels"/>.
/// </summary>
internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary><see cref="Q8_0x1"/> on VNNI.</summary>
    public static void Q8_0x1Vnni(byte* w, byte* y, int n, float* output) => SignedX1<Q8Weights, VnniOffset>(w, y, n, output);

    /// <summary><see cref="Q8_0x4"/> on VNNI.</summary>
    public static void Q8_0x4Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX4<Q8Weights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Q8_0x8"/> on VNNI.</summary>
    public static void Q8_0x8Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX8<Q8Weights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Iq4Nlx1"/> on VNNI.</summary>
    public static void Iq4Nlx1Vnni(byte* w, byte* y, int n, float* output) => SignedX1<Iq4NlWeights, VnniOffset>(w, y, n, output);

    /// <summary><see cref="Iq4Nlx4"/> on VNNI.</summary>
    public static void Iq4Nlx4Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX4<Iq4NlWeights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Iq4Nlx8"/> on VNNI.</summary>
    public static void Iq4Nlx8Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX8<Iq4NlWeights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Q4_Kx1"/> on VNNI.</summary>
    public static void Q4_Kx1Vnni(byte* w, byte* y, int n, float* output) => QuantK4x1<Dpbusd>(w, y, n, output);

    /// <summary><see cref="Q5_Kx1"/> on VNNI.</summary>
    public static void Q5_Kx1Vnni(byte* w, byte* y, int n, float* output) => QuantK5x1<Dpbusd>(w, y, n, output);

    /// <summary>
    /// The sign trick spends three multiply-pipe instructions per 32 multiply-adds of a row and token (vpsignb,
    /// vpmaddubsw, vpmaddwd). This is one: each weight vector is offset to unsigned once (w + 128, an XOR with 0x80,
    /// shared by all tokens) and multiplied against the token's signed bytes as they are; the offset's contribution,
    /// 128 x the block's activation sum, is taken off once per block (the extras hold 8 x that sum). The integers
    /// are exact (at most 32 x 255 x 128 in a lane), so every block sum, and with the same float finish every output,
    /// has the sign trick's bits.
    /// </summary>
    private readonly struct VnniOffset : IQ8Multiply
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Prepare(Vector256<sbyte> w) => Avx2.Xor(w.AsByte(), Vector256.Create((byte)0x80));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Step(Vector256<int> sum, Vector256<byte> prepared, Vector256<sbyte> w, byte* y)
            => AvxVnni.MultiplyWideningAndAdd(sum, prepared, Broadcast4(y));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockSum(Vector256<int> sum, byte* e) => Avx2.Subtract(sum, Vector256.Create(*(int*)(e + 4) << 4));
    }
}
