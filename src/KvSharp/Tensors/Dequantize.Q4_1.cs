using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Dequantize
{
    /// <summary>ggml dequantize_row_q4_1: x = q*d + m (rounded after the product, no FMA).</summary>
    private static void Q4_1(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * Q4_1Bytes, Q4_1Bytes);
            float d = F16(blk, 0), m = F16(blk, 2);
            for (int j = 0; j < QK / 2; j++)
            {
                y[b * QK + j] = (blk[4 + j] & 0x0F) * d + m;
                y[b * QK + j + QK / 2] = (blk[4 + j] >> 4) * d + m;
            }
        }
    }
}
