
namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// MXFP4 weights x Q8_0 activations in block-sequential order, like <see cref="Iq4Nl"/> (MXFP4 is IQ4_NL's nibble
    /// layout with its own level table and a power-of-two scale byte in place of the f16): per block the exact integer
    /// dot, then acc = fma(2^(e-128)·dy, sum, acc).
    /// </summary>
    /// <remarks>
    /// ggml's AVX2 MXFP4 vec_dot, like its IQ4_NL one, accumulates in eight float lanes; IQ4_NL's order here is the one
    /// kernels over several rows or tokens can reproduce, so MXFP4 takes it too, and against ggml it differs only in
    /// float rounding. Bound: |sum| ≤ 32 · 12 · 127 &lt; 2^16.
    /// </remarks>
    public static float Mxfp4(byte* x, byte* y, int nb) => NibbleLevelRow<Mxfp4Levels>(x, y, nb);
}
