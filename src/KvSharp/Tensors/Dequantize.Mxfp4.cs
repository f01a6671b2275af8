using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

public static partial class Dequantize
{
    /// <summary>
    /// ggml dequantize_row_mxfp4: x = level · 2^(e-128). Every product is exact (a small integer times a power of two,
    /// at least 2^-128), except that the largest exponents overflow to ±infinity as ggml's do.
    /// </summary>
    private static void Mxfp4(ReadOnlySpan<byte> src, Span<float> y)
    {
        for (int b = 0; b < y.Length / QK; b++)
        {
            var blk = src.Slice(b * MXFP4Bytes, MXFP4Bytes);
            NibbleLevels(Mxfp4Values, blk.Slice(1, 16), E8M0Half(blk[0]), y.Slice(b * QK, QK));
        }
    }
}
