using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Loads of stored key or value elements as floats, for kernels written once over <typeparamref name="T"/> = float
/// (read as is), Half (widened in registers by <see cref="HalfConvert"/>) or sbyte (a Q8_0 row's integers, read as
/// q x d with d from <see cref="Q8Scales"/>: exactly the float a dequantized tile would hold). A Half element comes out x 2^-112
/// (<see cref="HalfConvert.Widen16ScaledDown"/>: exact, no multiply) and the kernel multiplies the other factor of
/// each product by 2^112 instead (<see cref="ScaleUp"/>), so every product — and every FMA's rounded sum — is
/// exactly what the float holding the half's value gives: an F16 cache gives exactly a float cache's bits. The type
/// tests are constants in each specialisation, so the float kernels compile to plain loads and keep their bits.
/// </summary>
internal static class WideningLoads
{
    /// <summary>Whether rows of <typeparamref name="T"/> can be read here (Half needs AVX2).</summary>
    public static bool Supported<T>() where T : unmanaged =>
        typeof(T) == typeof(float) || (typeof(T) == typeof(Half) && HalfConvert.CanWidenVectors) || (typeof(T) == typeof(sbyte) && Avx2.IsSupported);

    /// <summary>
    /// x times the factor that makes x x (a loaded element) the true product: x for float rows, x x 2^112 for Half
    /// rows. Exact where x x 2^112 is finite (|x| &lt; 2^16, e.g. a softmax weight); a caller scaling a query checks it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleUp<T>(float x) where T : unmanaged => typeof(T) == typeof(Half) ? x * HalfConvert.TwoTo112 : x;

    /// <summary>Elements i..i+7 of <paramref name="row"/> in <paramref name="lower"/>, i+8..i+15 in <paramref name="upper"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16<T>(ref T row, nuint i, scoped in Q8Scales scales, out Vector256<float> lower, out Vector256<float> upper)
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            lower = Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i);
            upper = Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i + 8);
        }
        else if (typeof(T) == typeof(sbyte))
        {
            ref sbyte q = ref Unsafe.Add(ref Unsafe.As<T, sbyte>(ref row), (nint)i);
            var d = Vector256.Create(scales.Of(ref q));
            Vector128<sbyte> bytes = Vector128.LoadUnsafe(ref q);
            lower = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(bytes)) * d;
            upper = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(bytes, 8))) * d;
        }
        else
        {
            HalfConvert.Widen16ScaledDown(HalfConvert.InUnpackOrder(Vector256.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i)),
                out lower, out upper);
        }
    }

    /// <summary>Elements i..i+7 of <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8<T>(ref T row, nuint i, scoped in Q8Scales scales) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector256.LoadUnsafe(ref Unsafe.As<T, float>(ref row), i);
        if (typeof(T) == typeof(sbyte))
        {
            ref sbyte q = ref Unsafe.Add(ref Unsafe.As<T, sbyte>(ref row), (nint)i);
            Vector128<sbyte> bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<sbyte, byte>(ref q))).AsSByte();
            return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(bytes)) * Vector256.Create(scales.Of(ref q));
        }
        return HalfConvert.Widen8ScaledDown(Vector128.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i));
    }

    /// <summary>Element i of <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1<T>(ref T row, nint i, scoped in Q8Scales scales) where T : unmanaged =>
        typeof(T) == typeof(float) ? Unsafe.As<T, float>(ref Unsafe.Add(ref row, i))
        : typeof(T) == typeof(sbyte) ? Unsafe.As<T, sbyte>(ref Unsafe.Add(ref row, i)) * scales.Of(ref Unsafe.Add(ref row, i))
        : (float)Unsafe.As<T, Half>(ref Unsafe.Add(ref row, i)) * HalfConvert.TwoToMinus112;

    /// <summary>
    /// Elements i..i+15 of a row for sums whose accumulators can sit in any lane order (value sums): as
    /// <see cref="Load16"/>, but a Half row's lanes as the unpacks leave them (<see cref="HalfConvert.Widen16ScaledDown"/>,
    /// one permute fewer), for accumulators put in the same lanes by <see cref="SwapInnerHalves"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadValues16<T>(ref T row, nuint i, scoped in Q8Scales scales, out Vector256<float> first, out Vector256<float> second)
        where T : unmanaged
    {
        if (typeof(T) != typeof(Half))
            Load16(ref row, i, scales, out first, out second);
        else
            HalfConvert.Widen16ScaledDown(Vector256.LoadUnsafe(ref Unsafe.As<T, ushort>(ref row), i), out first, out second);
    }

    /// <summary>
    /// Accumulators of 16 columns (x = columns 0..7, y = 8..15) into or out of <see cref="LoadValues16"/>'s lanes:
    /// for Half rows the 128-bit halves x.hi and y.lo change places (its own inverse); for float rows nothing moves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SwapInnerHalves<T>(ref Vector256<float> x, ref Vector256<float> y) where T : unmanaged
    {
        if (typeof(T) != typeof(Half)) return;
        Vector256<float> lows = Avx.Permute2x128(x, y, 0x20), highs = Avx.Permute2x128(x, y, 0x31);
        x = lows;
        y = highs;
    }
}
