using System.Runtime.CompilerServices;

namespace KvSharp.Tensors;

/// <summary>
/// The asymmetric quantizer KIVI uses for a set of floats (a channel over a group of tokens, or a group of a token's
/// channels): codes q in [0, levels] with x ≈ min + q x scale, min and scale kept as binary16 (as KIVI's and
/// llama.cpp's q4_1 are). min is rounded down and scale up to binary16, so the codes still span the set and every
/// element is within half a step (scale / 2) of its value. A set holding NaN or ±Inf, or reaching past binary16's
/// range (|x| near 65504), stores NaN parameters: all of it reads back as NaN, never as a silently finite value.
/// </summary>
public static class KiviQuantizer
{
    /// <summary>The stored (min, scale) of a set whose least and greatest elements are <paramref name="min"/> and <paramref name="max"/>.</summary>
    public static (Half Min, Half Scale) Parameters(float min, float max, int levels)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max)) return (Half.NaN, Half.NaN);
        Half low = (Half)min;
        if ((float)low > min) low = Half.BitDecrement(low);
        float range = max - (float)low;
        Half step = (Half)(range / levels);
        if ((float)step * levels < range) step = Half.BitIncrement(step);
        return Half.IsFinite(low) && Half.IsFinite(step) ? (low, step) : (Half.NaN, Half.NaN);
    }

    /// <summary>The code of <paramref name="x"/>: the nearest step from min, clamped to [0, levels] (0 for NaN parameters or a zero step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Code(float x, float min, float scale, int levels)
    {
        if (!(scale > 0)) return 0;
        float q = MathF.Round((x - min) / scale);
        return q <= 0 ? 0 : q >= levels ? levels : (int)q;
    }

    /// <summary>Code <paramref name="c"/> (of <paramref name="bits"/> bits each) of a packed row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Unpack(ref byte row, int c, int bits)
    {
        int bit = c * bits;
        return (Unsafe.Add(ref row, bit >> 3) >> (bit & 7)) & ((1 << bits) - 1);
    }

    /// <summary>Stores code <paramref name="q"/> as element <paramref name="c"/> of a packed row (whose byte starts zeroed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pack(Span<byte> row, int c, int q, int bits)
    {
        int bit = c * bits;
        row[bit >> 3] |= (byte)(q << (bit & 7));
    }
}
