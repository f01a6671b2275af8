using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// Packed KIVI codes widened to floats, sixteen channels at a time where AVX-512 is there and eight where AVX2 is (one
/// broadcast, one variable shift, one mask and one conversion per vector of codes, against a shift and a mask per code
/// in <see cref="KiviQuantizer.Unpack"/>), one at a time otherwise. Every path gives x = code x scale + min with one
/// rounding after the product and one after the sum (no fused multiply-add), so they agree bit for bit.
/// </summary>
internal static class KiviCodes
{
    /// <summary>
    /// The widest vector (16 or 8 channels; 1 for one at a time) <see cref="Dequantize(ref byte, int, int, int, ref float, ref float, ref float, int)"/>
    /// may use for codes of <paramref name="bits"/> bits on this CPU.
    /// </summary>
    public static int Widest(int bits) => bits is not (4 or 2) || !Avx2.IsSupported ? 1 : Avx512F.IsSupported ? 16 : 8;

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

    /// <summary>Codes of channels c..c+15 (c a multiple of 8) as floats: <see cref="Load8"/> of both halves in one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(ref byte row, int c, int bits)
    {
        ref byte at = ref Unsafe.Add(ref row, c * bits >> 3);
        // Sixteen codes take 2 x `bits` bytes. 4-bit: each 32-bit half of the 8 bytes spread to its eight lanes by one
        // permute (built from two 256-bit halves, the JIT inserted them into the previous iteration's vector: a chain
        // through the loop, 2x slower than eight at a time).
        Vector512<uint> words = bits == 4
            ? Avx512F.PermuteVar16x32(Vector512.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(ref at)).AsUInt32(),
                Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
            : Vector512.Create(Unsafe.ReadUnaligned<uint>(ref at));
        Vector512<uint> shifts = bits == 4
            ? Vector512.Create(0u, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28)
            : Vector512.Create(0u, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        Vector512<uint> codes = Avx512F.ShiftRightLogicalVariable(words, shifts) & Vector512.Create((1u << bits) - 1);
        return Avx512F.ConvertToVector512Single(codes.AsInt32());
    }

    /// <summary>
    /// destination[c] = code(c) x scales[c] + mins[c] for channels [from, to) of one row: sixteen at a time while
    /// <paramref name="width"/> allows and sixteen remain, then eight, then one at a time (<paramref name="from"/> a
    /// multiple of 8 for the vectors).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dequantize(ref byte row, int from, int to, int bits, ref float scales, ref float mins, ref float destination, int width)
    {
        int c = from;
        if (width >= 16)
            for (; c + 16 <= to; c += 16)
            {
                var x = Avx512F.Add(Avx512F.Multiply(Load16(ref row, c, bits), Vector512.LoadUnsafe(ref scales, (nuint)c)),
                    Vector512.LoadUnsafe(ref mins, (nuint)c));
                x.StoreUnsafe(ref destination, (nuint)c);
            }
        if (width >= 8)
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
    public static void Dequantize(ref byte row, int from, int to, int bits, float scale, float min, ref float destination, int width)
    {
        int c = from;
        if (width >= 16)
        {
            var (s, m) = (Vector512.Create(scale), Vector512.Create(min));
            for (; c + 16 <= to; c += 16) Avx512F.Add(Avx512F.Multiply(Load16(ref row, c, bits), s), m).StoreUnsafe(ref destination, (nuint)c);
        }
        if (width >= 8)
        {
            var (s, m) = (Vector256.Create(scale), Vector256.Create(min));
            for (; c + 8 <= to; c += 8) Avx.Add(Avx.Multiply(Load8(ref row, c, bits), s), m).StoreUnsafe(ref destination, (nuint)c);
        }
        for (; c < to; c++) Unsafe.Add(ref destination, c) = KiviQuantizer.Unpack(ref row, c, bits) * scale + min;
    }
}
