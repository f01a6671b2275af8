using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// ggml's quantize_row_mxfp4_ref: one shared power-of-two scale per block of 32, from the block's largest magnitude
/// (OCP MX: 2^(floor(log2 amax) - 2), so that amax lands in E2M1's top binade), then each element's nearest level.
/// Float operations are the C code's, in its order and without fused multiply-adds, so the bytes are ggml's.
/// </summary>
public static partial class Quantize
{
    /// <summary>The exponent byte of a block holding NaN or ±infinity: the largest scale, 2^127 (see <see cref="Mxfp4Ref"/>).</summary>
    private const byte Mxfp4DamagedExponent = 255;

    /// <summary>The nibble of level +12, which at <see cref="Mxfp4DamagedExponent"/> dequantizes to +infinity.</summary>
    private const byte Mxfp4Overflow = 7 | (7 << 4);

    /// <remarks>
    /// The scale picks the block's top binade, so magnitudes above 12·d = 1.5·2^floor(log2 amax) clip to the largest
    /// level, as in ggml (and the MX format). A block holding NaN or ±infinity (damaged weights upstream) has no scale;
    /// ggml's conversion of an infinite exponent to a byte is undefined, and its level search would store NaNs as 0.
    /// Such a block is stored as e = 255 with every level +12, which dequantizes to +infinity throughout, so the
    /// damage shows, as Q8_K's NaN scale does, instead of passing for small weights.
    /// </remarks>
    private static void Mxfp4Ref(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var blk = y.Slice(b * MXFP4Bytes, MXFP4Bytes);
            float amax = 0;
            bool damaged = false;
            for (int j = 0; j < QK; j++)
            {
                float ax = MathF.Abs(xb[j]);
                if (amax < ax) amax = ax;
                damaged |= !float.IsFinite(ax);
            }
            if (damaged)
            {
                blk[0] = Mxfp4DamagedExponent;
                blk[1..].Fill(Mxfp4Overflow);
                continue;
            }
            byte e = Mxfp4Exponent(amax);
            float d = E8M0Half(e);
            blk[0] = e;
            for (int j = 0; j < QK / 2; j++)
                blk[1 + j] = (byte)(Mxfp4Level(xb[j], d) | (Mxfp4Level(xb[j + QK / 2], d) << 4));
        }
    }

    /// <summary>
    /// ggml's e = floorf(log2f(amax)) - 2 + 127 (0 for an all-zero block). MathF.Log2 is the C library's log2f, as
    /// ggml's is, so an amax just below a power of two whose log2f rounds up to the integer takes the exponent above,
    /// exactly when ggml's does. Below 2^-125 ggml's conversion of a negative float to a byte is undefined; the
    /// smallest exponent, 0, is the closest scale there.
    /// </summary>
    private static byte Mxfp4Exponent(float amax) =>
        amax > 0 ? (byte)Math.Max(0, (int)MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;

    /// <summary>ggml best_index_mxfp4: the index of the level nearest to x at scale d; the first such index on a tie.</summary>
    private static int Mxfp4Level(float x, float d)
    {
        ReadOnlySpan<sbyte> levels = Mxfp4Values;
        int best = 0;
        float bestErr = MathF.Abs(levels[0] * d - x);
        for (int i = 1; i < levels.Length; i++)
        {
            float err = MathF.Abs(levels[i] * d - x);
            if (err < bestErr)
            {
                best = i;
                bestErr = err;
            }
        }
        return best;
    }
}
