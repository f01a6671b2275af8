using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Dequantize
{
    /// <summary>ggml dequantize_row_q2_K: dl = d·(sc &amp; 15), ml = dmin·(sc >> 4), both rounded, then dl·q − ml.</summary>
    private static void Q2_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * Q2_KBytes, Q2_KBytes);
            float d = F16(blk, Q2_K_D), min = F16(blk, Q2_K_Dmin);
            var o = y.Slice(b * QK_K, QK_K);
            // Element 128n + 32g + e: bits 2g of qs[32n + e], sub-block 8n + 2g + e/16.
            for (int n = 0; n < 2; n++)
                for (int g = 0; g < 4; g++)
                    for (int half = 0; half < 2; half++)
                    {
                        byte sc = blk[Q2_K_Scales + 8 * n + 2 * g + half];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 16 * half; l < 16 * half + 16; l++)
                            o[128 * n + 32 * g + l] = dl * ((blk[Q2_K_Qs + 32 * n + l] >> (2 * g)) & 3) - ml;
                    }
        }
    }
}
