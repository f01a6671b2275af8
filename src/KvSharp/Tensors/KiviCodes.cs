using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// Packed KIVI codes widened to floats, eight channels at a time where AVX2 is there (one broadcast, one variable
/// shift, one mask and one conversion for eight codes, against a shift and a mask per code in
/// <see cref="KiviQuantizer.Unpack"/>), one at a time otherwise. Both give x = code x scale + min with one rounding
/// after the product and one after the sum (no fused multiply-add), so the vector and scalar paths agree bit for bit.
/// </summary>
internal static class KiviCodes
{
    /// <summary>True when <see cref="Load8"/> may be used for codes of <paramref name="bits"/> bits.</summary>
    public static bool Vectorised(int bits) => Avx2.IsSupported && bits is 4 or 2;

    /// <summary>Codes of channels c..c+7 (c a multiple of 8, so they start on a byte) as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ref byte row, int c, int bits)
    {
        ref byte at = ref Unsafe.Add(ref row, c * bits >> 3);
        // Eight codes take `bits` bytes: read no further than they reach.
        uint word = bits == 4 ? Unsafe.ReadUnaligned<uint>(ref at) : Unsafe.ReadUnaligned<ushort>(ref at);
        Vector256<uint> shifts = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7) * (uint)bits;
        Vector256<uint> codes = Avx2.ShiftRightLogicalVariable(Vector256.Create(word), shifts) & Vector256.Create((1u << bits) - 1);
        return Avx.ConvertToVector256Single(codes.AsInt32());
    }

    /// <summary>
    /// destination[c] = code(c) x scales[c] + mins[c] for channels [from, to) of one row: eight at a time while
    /// <paramref name="vector"/> and eight remain, then one at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(ref byte row, int from, int to, int bits, ref float scales, ref float mins, ref float destination, bool vector)
    {
        int c = from;
        if (vector)
            for (; c + 8 <= to; c += 8)
            {
                var x = Avx.Add(Avx.Multiply(Load8(ref row, c, bits), Vector256.LoadUnsafe(ref scales, (nuint)c)), Vector256.LoadUnsafe(ref mins, (nuint)c));
                x.StoreUnsafe(ref destination, (nuint)c);
            }
        for (; c < to; c++)
            Unsafe.Add(ref destination, c) = KiviQuantizer.Unpack(ref row, c, bits) * Unsafe.Add(ref scales, c) + Unsafe.Add(ref mins, c);
    }

    /// <summary>destination[c] = code(c) x scale + min for channels [from, to) of one row, one (min, scale) for all of them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(ref byte row, int from, int to, int bits, float scale, float min, ref float destination, bool vector)
    {
        int c = from;
        if (vector)
        {
            var (s, m) = (Vector256.Create(scale), Vector256.Create(min));
            for (; c + 8 <= to; c += 8) Avx.Add(Avx.Multiply(Load8(ref row, c, bits), s), m).StoreUnsafe(ref destination, (nuint)c);
        }
        for (; c < to; c++) Unsafe.Add(ref destination, c) = KiviQuantizer.Unpack(ref row, c, bits) * scale + min;
    }
}
