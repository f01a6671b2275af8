using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// Vectorized float -> binary16 with round-to-nearest-even, for whole rows (F16 activations, F16 KV cache), and the
/// exact widening back.
/// Integer algorithm after F. Giesen's float_to_half_fast3_rtne: normal results round by adding 0xfff plus the
/// mantissa's lowest kept bit, subnormal results let the FPU round by adding a magic float, overflow gives Inf and
/// NaN a quiet NaN. Same results as <c>(Half)f</c> for every non-NaN input; portable Vector256 code, so it is
/// identical with or without AVX2. Widening works on the halves' 16-bit lanes with AVX2 (<see cref="Widen16"/>) and
/// gives <c>(float)h</c>'s bits for every half.
/// </summary>
internal static class HalfConvert
{
    private const uint F16Max = (127 + 16) << 23;            // 65536.0f: at or above it the half is Inf (or NaN)
    private const uint DenormMagic = ((127 - 15) + (23 - 10) + 1) << 23; // 0.5f
    private const uint MinNormal = 113 << 23;                // 2^-14: below it the half is subnormal or zero

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Convert8(Vector256<uint> u)
    {
        Vector256<uint> sign = u & Vector256.Create(0x80000000u);
        Vector256<uint> f = u ^ sign;
        Vector256<uint> infNan = Vector256.ConditionalSelect(
            Vector256.GreaterThan(f, Vector256.Create(0x7f800000u)), Vector256.Create(0x7e00u), Vector256.Create(0x7c00u));
        Vector256<uint> sub = (f.AsSingle() + Vector256.Create(DenormMagic).AsSingle()).AsUInt32() - Vector256.Create(DenormMagic);
        Vector256<uint> odd = (f >> 13) & Vector256<uint>.One;
        Vector256<uint> normal = (f + Vector256.Create(unchecked((uint)((15 - 127) << 23) + 0xfff)) + odd) >> 13;
        Vector256<uint> r = Vector256.ConditionalSelect(Vector256.LessThan(f, Vector256.Create(MinNormal)), sub, normal);
        r = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(f, Vector256.Create(F16Max)), infNan, r);
        return r | (sign >> 16);
    }

    /// <summary>dst[i] = binary16 bits of src[i].</summary>
    public static void ToHalf(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        int n = src.Length, i = 0;
        ref uint s = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(src));
        ref ushort d = ref MemoryMarshal.GetReference(dst[..n]);
        for (; i + 16 <= n; i += 16)
        {
            Vector256<uint> a = Convert8(Vector256.LoadUnsafe(ref s, (nuint)i));
            Vector256<uint> b = Convert8(Vector256.LoadUnsafe(ref s, (nuint)i + 8));
            Vector256.Narrow(a, b).StoreUnsafe(ref d, (nuint)i);
        }
        for (; i < n; i++) dst[i] = BlockLayouts.FloatToHalf(src[i]);
    }

    /// <summary>x[i] = (float)(Half)x[i], in place.</summary>
    public static void RoundTrip(Span<float> x)
    {
        int n = x.Length, i = 0;
        ref uint p = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(x));
        for (; i + 8 <= n; i += 8)
        {
            Vector256<uint> h = Convert8(Vector256.LoadUnsafe(ref p, (nuint)i));
            for (int k = 0; k < 8; k++)
                Unsafe.Add(ref p, i + k) = BitConverter.SingleToUInt32Bits(BlockLayouts.HalfToFloat((ushort)h.GetElement(k)));
        }
        for (; i < n; i++) x[i] = BlockLayouts.HalfToFloat(BlockLayouts.FloatToHalf(x[i]));
    }

    /// <summary>
    /// dst[i] = src[i] as a float, with exactly the bits of <c>(float)src[i]</c> for every half (NaNs come out quiet,
    /// sign and payload kept, as .NET's conversion gives them).
    /// </summary>
    public static void ToSingle(ReadOnlySpan<Half> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException($"{src.Length} halves need {src.Length} floats, got {dst.Length}", nameof(dst));
        ToSingle(ref MemoryMarshal.GetReference(src), ref MemoryMarshal.GetReference(dst), src.Length);
    }

    /// <summary>The unchecked core of <see cref="ToSingle(ReadOnlySpan{Half}, Span{float})"/>: n halves from src to dst.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ToSingle(ref Half src, ref float dst, int n)
    {
        int i = 0;
        if (CanWidenVectors)
        {
            ref ushort s = ref Unsafe.As<Half, ushort>(ref src);
            for (; i + 16 <= n; i += 16)
            {
                Widen16(Vector256.LoadUnsafe(ref s, (nuint)i), out Vector256<float> lower, out Vector256<float> upper);
                lower.StoreUnsafe(ref dst, (nuint)i);
                upper.StoreUnsafe(ref dst, (nuint)i + 8);
            }
            if (i + 8 <= n)
            {
                Widen8(Vector128.LoadUnsafe(ref s, (nuint)i)).StoreUnsafe(ref dst, (nuint)i);
                i += 8;
            }
        }
        for (; i < n; i++) Unsafe.Add(ref dst, i) = (float)Unsafe.Add(ref src, i);
    }

    /// <summary>Whether <see cref="Widen16"/> and <see cref="Widen8"/> can run (they need AVX2); if not, widen one by one.</summary>
    internal static bool CanWidenVectors => Avx2.IsSupported;

    /// <summary>
    /// Sixteen halves widened exactly to floats: <paramref name="lower"/> = halves 0..7, <paramref name="upper"/> =
    /// 8..15. Works on the 16-bit lanes, two floats' worth of work per instruction (see <see cref="FloatWords"/>);
    /// about six instructions per eight halves against ten when each half is first extended to 32 bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Widen16(Vector256<ushort> halves, out Vector256<float> lower, out Vector256<float> upper)
    {
        Widen16ScaledDown(InUnpackOrder(halves), out lower, out upper);
        lower *= Vector256.Create(TwoTo112);
        upper *= Vector256.Create(TwoTo112);
    }

    /// <summary>Eight halves widened exactly to floats, as <see cref="Widen16"/> does its first eight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Widen8(Vector128<ushort> halves) => Widen8ScaledDown(halves) * Vector256.Create(TwoTo112);

    /// <summary>2^(127 - 15): rebiases a half's exponent to a float's.</summary>
    internal const float TwoTo112 = 5.192297e33f;

    /// <summary>1 / <see cref="TwoTo112"/>.</summary>
    internal const float TwoToMinus112 = 1f / TwoTo112;

    /// <summary>
    /// Sixteen halves as floats x 2^-112, exactly (the values <see cref="Widen16"/> has before its multiply; an
    /// infinity or NaN keeps its all-ones exponent, a NaN is not yet quiet), in the lanes the unpacks leave them:
    /// <paramref name="first"/> = halves 0..3 and 8..11, <paramref name="second"/> = 4..7 and 12..15 (in order if the
    /// halves went through <see cref="InUnpackOrder"/> first). For sums that can take the 2^112 on the other factor:
    /// seven instructions per sixteen halves, no multiplies.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Widen16ScaledDown(Vector256<ushort> halves, out Vector256<float> first, out Vector256<float> second)
    {
        FloatWords(halves.AsInt16(), out Vector256<short> high, out Vector256<short> low);
        first = Avx2.UnpackLow(low, high).AsSingle();
        second = Avx2.UnpackHigh(low, high).AsSingle();
    }

    /// <summary>
    /// Sixteen halves rearranged so that <see cref="Widen16ScaledDown"/> gives floats 0..7 and 8..15 in order: the
    /// unpacks pair words within each 128-bit lane, so the quadwords go 0, 2, 1, 3 (halves 0..3, 8..11 | 4..7, 12..15).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<ushort> InUnpackOrder(Vector256<ushort> halves) =>
        Avx2.Permute4x64(halves.AsUInt64(), 0b11_01_10_00).AsUInt16();

    /// <summary>Eight halves as floats x 2^-112, in order (<see cref="Widen8"/> before its multiply).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Widen8ScaledDown(Vector128<ushort> halves)
    {
        // Quadwords 0, 0, 1, 1: halves 0..3 low in the first 128-bit lane, 4..7 low in the second.
        FloatWords(Avx2.Permute4x64(halves.ToVector256Unsafe().AsUInt64(), 0b01_01_00_00).AsInt16(), out Vector256<short> high, out Vector256<short> low);
        return Avx2.UnpackLow(low, high).AsSingle();
    }

    /// <summary>
    /// The high and low 16 bits of each half's float bits before the rebias: sign | exponent (5 bits, not rebiased) |
    /// mantissa, i.e. high = sign | 000 | eeeee | top 7 mantissa bits (an arithmetic shift by 3 copies the sign into
    /// the three bits that must be zero; the mask clears them) and low = the last 3 mantissa bits at the top. As a
    /// float this is the half's value x 2^-112, exactly (a half subnormal becomes a float subnormal), so one multiply
    /// by 2^112 finishes zeros, subnormals and normals. An all-ones exponent (Inf, NaN) instead gets the float's
    /// all-ones exponent here, and the multiply keeps an infinity and quiets a NaN as .NET's (float)Half does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FloatWords(Vector256<short> h, out Vector256<short> high, out Vector256<short> low)
    {
        Vector256<short> exponent = h & Vector256.Create((short)0x7c00);
        Vector256<short> infNan = Avx2.CompareEqual(exponent, Vector256.Create((short)0x7c00)) & Vector256.Create((short)0x7f80);
        high = (Avx2.ShiftRightArithmetic(h, 3) & Vector256.Create(unchecked((short)0x8fff))) | infNan;
        low = Avx2.ShiftLeftLogical(h, 13);
    }
}
