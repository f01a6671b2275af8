using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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
}
