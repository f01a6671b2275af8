using System.Runtime.Intrinsics;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static unsafe partial class Dequantize
{
    /// <summary>ggml dequantize_row_q3_K: dl = d·(sc − 32) rounded, then dl·q with q = low bits − 4 where the high bit is clear.</summary>
    private static void Q3_K(ReadOnlySpan<byte> src, Span<float> y)
    {
        fixed (byte* blocks = src)
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            byte* x = blocks + b * Q3_KBytes;
            float d = F16(x + Q3_K_D);
            Vector128<uint> packed = Q3KScales.Unpack(x + Q3_K_Scales);
            byte* sc = (byte*)&packed;
            var o = y.Slice(b * QK_K, QK_K);
            // Element 128n + 32g + e: bits 2g of qs[32n + e], high bit 4n + g of hmask[e], sub-block 8n + 2g + e/16.
            for (int n = 0; n < 2; n++)
                for (int g = 0; g < 4; g++)
                    for (int half = 0; half < 2; half++)
                    {
                        float dl = d * (sc[8 * n + 2 * g + half] - 32);
                        for (int l = 16 * half; l < 16 * half + 16; l++)
                        {
                            int q = ((x[Q3_K_Qs + 32 * n + l] >> (2 * g)) & 3) - ((x[Q3_K_Hmask + l] >> (4 * n + g) & 1) != 0 ? 0 : 4);
                            o[128 * n + 32 * g + l] = dl * q;
                        }
                    }
        }
    }
}
