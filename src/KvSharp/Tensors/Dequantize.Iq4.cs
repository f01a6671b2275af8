using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Dequantize
{
    /// <summary>ggml dequantize_row_iq4_nl: x = d * level.</summary>
    private static void Iq4Nl(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * IQ4_NLBytes, IQ4_NLBytes);
            NibbleLevels(Iq4NlValues, blk.Slice(2, 16), F16(blk, 0), y.Slice(b * QK, QK));
        }
    }

    /// <summary>ggml dequantize_row_iq4_xs: sub-block ib is x = (d * (ls - 32)) * level.</summary>
    private static void Iq4Xs(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK_K; b++)
        {
            var blk = src.Slice(b * IQ4_XSBytes, IQ4_XSBytes);
            float d = F16(blk, 0);
            for (int ib = 0; ib < QK_K / 32; ib++)
                NibbleLevels(Iq4NlValues, blk.Slice(IQ4_XS_Qs + 16 * ib, 16), d * (Iq4XsScale(blk, ib) - 32), y.Slice(b * QK_K + 32 * ib, 32));
        }
    }
}
