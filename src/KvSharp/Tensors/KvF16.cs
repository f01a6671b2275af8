using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// KV elements as binary16 (llama.cpp's default cache type): rounded to nearest-even on write
/// (<see cref="HalfConvert.ToHalf"/>, the same bits as <c>(Half)x</c>) and widened exactly on read, so attention over
/// them computes what float rows holding the rounded values compute, bit for bit.
/// In registers, a half is widened to its value x 2^-112 (<see cref="HalfConvert.Widen16ScaledDown"/>: exact, no
/// multiply) and the other factor of each product is multiplied by 2^112 instead (<see cref="ScaleUp"/>), so every
/// product, and every FMA's rounded sum, is exactly the float one.
/// </summary>
public readonly struct KvF16 : IKvElement<KvF16>
{
    public static string Name => "F16";

    public static int RowBytes(int headDim) => headDim * 2;

    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) =>
        HalfConvert.ToHalf(source, MemoryMarshal.Cast<byte, ushort>(row));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        HalfConvert.ToSingle(ref Unsafe.As<byte, Half>(ref row), ref destination, headDim);

    /// <summary>
    /// Up to four queries (a decode step of a group of up to four heads) read the halves in registers, once per pair of
    /// queries (the score and value kernels take them two by two); a larger block (prefill) reuses each row for more
    /// pairs, so widening the tile once into floats costs less. Measured (AttentionBenchmarks, 64 heads): at four
    /// queries in registers equals the tile at 256 positions and is ~1.6x faster at 2048, where the tile's extra pass
    /// does not hide the cache misses. Needs AVX2, and a head_dim whose scaled queries fit on the stack (512).
    /// </summary>
    public static int MaxQueriesInRegisters(int headDim) => HalfConvert.CanWidenVectors && headDim <= 512 ? 4 : 0;

    public static bool ReadsScaledDown => true;

    /// <summary>x x 2^112: exact where finite (|x| &lt; 2^16, e.g. a softmax weight); a caller scaling a query checks it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleUp(float x) => x * HalfConvert.TwoTo112;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> lower, out Vector256<float> upper) =>
        HalfConvert.Widen16ScaledDown(HalfConvert.InUnpackOrder(Vector256.LoadUnsafe(ref Unsafe.As<byte, ushort>(ref row), i)), out lower, out upper);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ref byte row, nuint i, scoped in KvPlanes planes) =>
        HalfConvert.Widen8ScaledDown(Vector128.LoadUnsafe(ref Unsafe.As<byte, ushort>(ref row), i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(ref byte row, nint i, scoped in KvPlanes planes) =>
        (float)Unsafe.Add(ref Unsafe.As<byte, Half>(ref row), i) * HalfConvert.TwoToMinus112;

    /// <summary>The lanes as the unpacks leave them (one permute fewer than <see cref="Load16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadValues16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> first, out Vector256<float> second) =>
        HalfConvert.Widen16ScaledDown(Vector256.LoadUnsafe(ref Unsafe.As<byte, ushort>(ref row), i), out first, out second);

    /// <summary>The 128-bit halves x.hi and y.lo change places (its own inverse).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SwapInnerHalves(ref Vector256<float> x, ref Vector256<float> y)
    {
        Vector256<float> lows = Avx.Permute2x128(x, y, 0x20), highs = Avx.Permute2x128(x, y, 0x31);
        x = lows;
        y = highs;
    }
}
