using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Dequantize
{
    /// <summary>ggml dequantize_row_iq4_nl: x = d * level.</summary>
    private static void Iq4Nl(ReadOnlySpan<byte> src, Span<float> y)
    {
        ReadOnlySpan<sbyte> kv = Iq4NlValues;
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * IQ4_NLBytes, IQ4_NLBytes);
            float d = F16(blk, 0);
            for (int j = 0; j < QK / 2; j++)
            {
                y[b * QK + j] = d * kv[blk[2 + j] & 0xF];
                y[b * QK + j + QK / 2] = d * kv[blk[2 + j] >> 4];
            }
        }
    }

    /// <summary>ggml dequantize_row_iq4_xs: sub-block ib is x = (d * (ls - 32)) * level.</summary>
    private static void Iq4Xs(ReadOnlySpan<byte> src, Span<float> y)
    {
        ReadOnlySpan<sbyte> kv = Iq4NlValues;
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * IQ4_XSBytes, IQ4_XSBytes);
            float d = F16(blk, 0);
            for (int ib = 0; ib < QK_K / 32; ib++)
            {
                float dl = d * (Iq4XsScale(blk, ib) - 32);
                var qs = blk.Slice(IQ4_XS_Qs + 16 * ib, 16);
                var o = y.Slice(b * QK_K + 32 * ib, 32);
                for (int j = 0; j < 16; j++)
                {
                    o[j] = dl * kv[qs[j] & 0xF];
                    o[j + 16] = dl * kv[qs[j] >> 4];
                }
            }
        }
    }
}
