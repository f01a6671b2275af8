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
}
