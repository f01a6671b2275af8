using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotScalar
{
    /// <summary>
    /// Q4_1 weights x Q8_1 activations in block-sequential order: per block the exact integer Σ n·q, acc = fma(dx·dy,
    /// sum, acc), then acc = fma(m, s, acc) with the activation block's s (d·Σq as a half, ggml's Q8_1). ggml's own
    /// order keeps eight float lanes and sums the min terms apart; this one lets the group kernels sum a block of
    /// eight rows in int16 lanes for eight tokens at once, as Q4_0's do. Every Q4_1 kernel here computes it.
    /// </summary>
    public static float Q4_1(byte* x, byte* y, int nb)
    {
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += Q4_1Bytes, y += Q8_1Bytes)
        {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (x[4 + j] & 0xF) * (sbyte)y[4 + j] + (x[4 + j] >> 4) * (sbyte)y[20 + j];
            acc = MathF.FusedMultiplyAdd(F16(x) * F16(y), sum, acc);
            acc = MathF.FusedMultiplyAdd(F16(x + 2), F16(y + 2), acc);
        }
        return acc;
    }
}
