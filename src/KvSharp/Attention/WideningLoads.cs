using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Loads of stored key or value elements as floats, for kernels written once over <typeparamref name="T"/> = float
/// (read as is) or Half (widened exactly in registers by <see cref="HalfConvert"/>). The type tests are constants
/// in each specialisation, so the float kernels compile to plain loads and keep their bits, and a Half kernel does
/// the same arithmetic on the same values: an F16 cache gives exactly a float cache's bits.
/// </summary>
internal static class WideningLoads
{
    /// <summary>Whether rows of <typeparamref name="T"/> can be read with <see cref="Load16"/> and <see cref="Load8"/>.</summary>
    public static bool Supported<T>() where T : unmanaged =>
        typeof(T) == typeof(float) || (typeof(T) == typeof(Half) && HalfConvert.CanWidenVectors);

    /// <summary>Elements i..i+7 of <paramref name="row"/> in <paramref name="lower"/>, i+8..i+15 in <paramref name="upper"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16<T>(ref T row, nuint i, out Vector256<float> lower, out Vector256<float> upper) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            lower = Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i);
            upper = Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i + 8);
        }
        else
        {
            HalfConvert.Widen16(Vector256.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i), out lower, out upper);
        }
    }

    /// <summary>Elements i..i+7 of <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8<T>(ref T row, nuint i) where T : unmanaged =>
        typeof(T) == typeof(float)
            ? Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i)
            : HalfConvert.Widen8(Vector128.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i));

    /// <summary>Element i of <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1<T>(ref T row, nint i) where T : unmanaged =>
        typeof(T) == typeof(float) ? Unsafe.As<T, float>(ref Unsafe.Add(ref row, i)) : (float)Unsafe.As<T, Half>(ref Unsafe.Add(ref row, i));

    /// <summary>
    /// Elements i..i+15 of a value row for a weighted sum: a float row as <see cref="Load16"/> gives it; a Half row
    /// x 2^-112 and in <see cref="HalfConvert.Widen16ScaledDown"/>'s lanes, to be multiplied by
    /// <see cref="ValueWeight"/> into accumulators put in the same lanes by <see cref="SwapInnerHalves"/>. The
    /// product is exactly element x weight (the weight, at most 1, scales up exactly; the element scales down to an
    /// exact float, subnormal at worst), so each FMA rounds the same sum as with the rebiased element.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadValues16<T>(ref T row, nuint i, out Vector256<float> first, out Vector256<float> second) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            Load16(ref row, i, out first, out second);
        else
            HalfConvert.Widen16ScaledDown(Vector256.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i), out first, out second);
    }

    /// <summary>The factor that multiplies <see cref="LoadValues16"/>'s elements for a softmax weight p (0 &lt;= p &lt;= 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ValueWeight<T>(float p) where T : unmanaged => typeof(T) == typeof(float) ? p : p * HalfConvert.TwoTo112;

    /// <summary>
    /// Accumulators of 16 columns (x = columns 0..7, y = 8..15) into or out of <see cref="LoadValues16"/>'s lanes:
    /// for Half rows the 128-bit halves x.hi and y.lo change places (its own inverse); for float rows nothing moves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SwapInnerHalves<T>(ref Vector256<float> x, ref Vector256<float> y) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return;
        Vector256<float> lows = Avx.Permute2x128(x, y, 0x20), highs = Avx.Permute2x128(x, y, 0x31);
        x = lows;
        y = highs;
    }
}
