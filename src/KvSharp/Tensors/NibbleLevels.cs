using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The nibble-level weight types, IQ4_NL and MXFP4: 32 elements a block, one per-block scale, then 16 bytes of nibbles
/// (low: elements 0..15, high: 16..31) that index a table of 16 signed levels. They differ only in the table and the
/// scale (IQ4_NL: an f16 d; MXFP4: an E8M0 byte, d = <see cref="E8M0Half"/>), so their interleaved group kernels
/// (<see cref="VecDotAvx2Interleaved"/>, <see cref="VecDotAvx512Interleaved"/>) are one generic code over this.
/// An interleaved group block (<see cref="InterleavedRows"/>) holds the eight rows' scales (8 x
/// <see cref="ScaleBytes"/> bytes), then Q4_0's four quant vectors.
/// </summary>
internal interface INibbleLevels
{
    /// <summary>Bytes of one row's block (IQ4_NL 18, MXFP4 17).</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Whether the scale is an E8M0 byte (MXFP4) rather than an f16 (IQ4_NL).</summary>
    static abstract bool E8M0 { get; }

    /// <summary>The 16 levels in both 128-bit lanes, for 256-bit (and, doubled, 512-bit) vpshufb.</summary>
    static abstract Vector256<sbyte> Table { get; }

    /// <summary>The 16 levels, for the scalar kernels and dequantization.</summary>
    static abstract ReadOnlySpan<sbyte> Levels { get; }

    /// <summary>One row's block scale, at the start of its block, as a float (f16 d, or <see cref="E8M0Half"/>).</summary>
    static abstract unsafe float Scale(byte* block);
}

/// <summary>IQ4_NL: ggml's non-linear levels (<see cref="Iq4NlValues"/>), an f16 scale.</summary>
internal readonly struct Iq4NlLevels : INibbleLevels
{
    public static int BlockBytes => IQ4_NLBytes;
    public static bool E8M0 => false;
    public static Vector256<sbyte> Table { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => VecDotAvx2.Iq4Table2; }
    public static ReadOnlySpan<sbyte> Levels => Iq4NlValues;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block) => F16(block);
}

/// <summary>MXFP4: the doubled E2M1 levels (<see cref="Mxfp4Values"/>), an E8M0 scale byte.</summary>
internal readonly struct Mxfp4Levels : INibbleLevels
{
    public static int BlockBytes => MXFP4Bytes;
    public static bool E8M0 => true;
    public static Vector256<sbyte> Table { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => VecDotAvx2.Mxfp4Table2; }
    public static ReadOnlySpan<sbyte> Levels => Mxfp4Values;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block) => E8M0Half(*block);
}

/// <summary>Block scales of the nibble-level types as floats, eight or sixteen rows at once, exactly the scalar kernels' floats.</summary>
internal static unsafe class NibbleLevelScales
{
    /// <summary>Bytes of one row's scale in <typeparamref name="K"/>'s block (2 or 1); the quants follow it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ScaleBytes<K>() where K : INibbleLevels => K.BlockBytes - 16;

    /// <summary>
    /// Eight E8M0 bytes, zero-extended into int32 lanes, as <see cref="E8M0Half"/>'s floats: 2^(e-128) built from bits,
    /// (e - 1) &lt;&lt; 23 for e ≥ 2 and the subnormals 0x00200000 &lt;&lt; e for e = 0, 1 (a shift and a select; no
    /// arithmetic, so every bit pattern, 2^127 for e = 255 included, is the scalar one's).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> E8M0ToSingle(Vector256<int> e)
    {
        Vector256<int> normal = Avx2.Subtract(Avx2.ShiftLeftLogical(e, 23), Vector256.Create(1 << 23));
        Vector256<int> subnormal = Avx2.ShiftLeftLogicalVariable(Vector256.Create(0x00200000), e.AsUInt32());
        return Avx2.BlendVariable(normal.AsByte(), subnormal.AsByte(), Avx2.CompareGreaterThan(Vector256.Create(2), e).AsByte()).AsSingle();
    }

    /// <summary><see cref="E8M0ToSingle(Vector256{int})"/> over sixteen lanes (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> E8M0ToSingle(Vector512<int> e)
    {
        Vector512<int> normal = Avx512F.ShiftLeftLogical(e, 23) - Vector512.Create(1 << 23);
        Vector512<int> subnormal = Avx512F.ShiftLeftLogicalVariable(Vector512.Create(0x00200000), e.AsUInt32());
        return Vector512.ConditionalSelect(Vector512.LessThan(e, Vector512.Create(2)), subnormal, normal).AsSingle();
    }

    /// <summary>The eight rows' scales of a group block, at <paramref name="p"/>, as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scales<K>(byte* p) where K : INibbleLevels
        => K.E8M0 ? E8M0ToSingle(Avx2.ConvertToVector256Int32(p)) : VecDotAvx2.HalfToSingle((ushort*)p);
}
