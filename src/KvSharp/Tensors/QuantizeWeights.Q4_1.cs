using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Quantize
{
    /// <summary>ggml quantize_row_q4_1_ref (what llama-quantize runs without an imatrix): d = (max - min) / 15, m = min.</summary>
    private static void Q4_1Ref(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var blk = y.Slice(b * Q4_1Bytes, Q4_1Bytes);
            float id = MinScaleHeader(xb, blk, (1 << 4) - 1, out float min);
            for (int j = 0; j < QK / 2; j++)
            {
                int x0 = Math.Min(15, (int)(sbyte)(int)((xb[j] - min) * id + 0.5f));
                int x1 = Math.Min(15, (int)(sbyte)(int)((xb[j + QK / 2] - min) * id + 0.5f));
                blk[4 + j] = (byte)(x0 | (x1 << 4));
            }
        }
    }
}
