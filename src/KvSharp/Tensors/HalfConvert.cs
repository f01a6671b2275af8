using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace KvSharp.Tensors;

/// <summary>
/// Vectorized float -> binary16 with round-to-nearest-even, for whole rows (F16 activations, F16 KV cache), and the
/// exact widening back.
/// Integer algorithm after F. Giesen's float_to_half_fast3_rtne: normal results round by adding 0xfff plus the
/// mantissa's lowest kept bit, subnormal results let the FPU round by adding a magic float, overflow gives Inf and
/// NaN a quiet NaN. Same results as <c>(Half)f</c> for every non-NaN input; portable Vector256 code, so it is
/// identical with or without AVX2.
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
    /// dst[i] = src[i] as a float. Widening is exact, so the AVX2 path (<see cref="VecDotAvx2.HalfToSingle(Vector256{int})"/>)
    /// and the scalar one give the same bits.
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
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
        {
            ref short s = ref Unsafe.As<Half, short>(ref src);
            for (; i + 16 <= n; i += 16)
            {
                WidenSixteen(Vector256.LoadUnsafe(ref s, (nuint)i), out var low, out var high);
                low.StoreUnsafe(ref dst, (nuint)i);
                high.StoreUnsafe(ref dst, (nuint)i + 8);
            }
            for (; i + 8 <= n; i += 8)
                VecDotAvx2.HalfToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(Vector128.LoadUnsafe(ref s, (nuint)i)))
                    .StoreUnsafe(ref dst, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref dst, i) = (float)Unsafe.Add(ref src, i);
    }

    /// <summary>
    /// Sixteen halves widened exactly, in about half the operations of two eight-lane conversions: the float's upper
    /// 16 bits are built in the half's own lanes (sign; the 5-bit exponent moved down three places into the 8-bit
    /// field; the top seven mantissa bits), the lower 16 bits are the last three mantissa bits shifted up, and
    /// interleaving the two gives the float's bits with the exponent unbiased for binary16. Multiplying by 2^112
    /// rebiases it exactly, subnormals included; infinities and NaNs get an all-ones exponent first, which the product
    /// keeps. The qword permute first makes the in-lane interleave come out in element order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenSixteen(Vector256<short> h, out Vector256<float> low, out Vector256<float> high)
    {
        h = System.Runtime.Intrinsics.X86.Avx2.Permute4x64(h.AsInt64(), 0b11_01_10_00).AsInt16();
        Vector256<short> upper = (h >> 3) & Vector256.Create(unchecked((short)0x8fff));
        Vector256<short> special = Vector256.GreaterThan(h & Vector256.Create((short)0x7fff), Vector256.Create((short)0x7bff));
        upper |= special & Vector256.Create((short)0x7f80);
        Vector256<short> lower = h << 13;
        Vector256<float> rebias = Vector256.Create(5.192297e33f); // 2^112
        low = System.Runtime.Intrinsics.X86.Avx2.UnpackLow(lower, upper).AsSingle() * rebias;
        high = System.Runtime.Intrinsics.X86.Avx2.UnpackHigh(lower, upper).AsSingle() * rebias;
    }
}
