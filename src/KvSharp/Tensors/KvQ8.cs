using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// KV elements as Q8_0, like llama.cpp's q8_0 cache type: each group of <see cref="GroupSize"/> elements of a row
/// becomes 8-bit integers q and one float scale d, as llama.cpp's q8_0 quantizer computes them: d = max|x| / 127,
/// q = round-half-even(x x (1 / d)) (the rounding of its AVX2 path), read back as q x d. Eight lanes and the scalar loop
/// give the same bits, so a row's storage never depends on the machine's vectors. The scale is kept as a float, not
/// binary16 as in llama.cpp's blocks: a binary16 scale turns subnormal for groups whose largest value is below ~0.008
/// and then loses most of their precision. A row's integers lie in the element plane, its scales in the side plane
/// (row r's at r x head_dim / group floats), so the scale of the element at byte offset o is at o / group.
/// Attention reads the values q x d, exactly as float rows holding them would: in registers for decode blocks in
/// groups of 32, else from a dequantized tile.
/// </summary>
public readonly struct KvQ8 : IKvElement<KvQ8>
{
    public static string Name => "Q8_0";

    /// <summary>Elements per scale: 32 (llama.cpp's block), or a whole row where head_dim is not a multiple of 32.</summary>
    public static int GroupSize(int headDim) => headDim % Block == 0 ? Block : headDim;

    private const int Block = 32;

    public static int RowBytes(int headDim) => headDim;

    public static int SideBytes(int headDim) => headDim / GroupSize(headDim) * sizeof(float);

    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) =>
        Quantize(source, MemoryMarshal.Cast<byte, sbyte>(row), MemoryMarshal.Cast<byte, float>(side), GroupSize(source.Length));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        Dequantize(ref Unsafe.As<byte, sbyte>(ref row), ref Unsafe.As<byte, float>(ref side), headDim, GroupSize(headDim), ref destination);

    /// <summary>Decode blocks (up to four queries) in groups of 32 read q x d in registers (AVX2); others dequantize each tile.</summary>
    public static int MaxQueriesInRegisters(int headDim) => Avx2.IsSupported && GroupSize(headDim) == Block ? 4 : 0;

    /// <summary>
    /// The scale of the group holding the element at <paramref name="q"/>: in groups of 32, rows start at multiples of
    /// the group, so the scale lies at (byte distance from the element plane's origin) / 32 in the side plane, and a
    /// 16-element chunk at a multiple of 16 shares one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScaleOf(ref sbyte q, scoped in KvPlanes planes) =>
        Unsafe.Add(ref Unsafe.As<byte, float>(ref planes.Side), (nint)Unsafe.ByteOffset(ref planes.Elements, ref Unsafe.As<sbyte, byte>(ref q)) >> 5);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> lower, out Vector256<float> upper)
    {
        ref sbyte q = ref Unsafe.Add(ref Unsafe.As<byte, sbyte>(ref row), (nint)i);
        Widen16(ref q, Vector256.Create(ScaleOf(ref q, planes)), out lower, out upper);
    }

    /// <summary>
    /// Sixteen quants from <paramref name="q"/> as q x d, eight lanes each. Each eight bytes are loaded on their own (a
    /// load, no shuffle) rather than sixteen split by a byte shift.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen16(ref sbyte q, Vector256<float> d, out Vector256<float> lower, out Vector256<float> upper)
    {
        lower = QuantsAsFloats(EightBytes(ref q)) * d;
        upper = QuantsAsFloats(EightBytes(ref Unsafe.Add(ref q, 8))) * d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ref byte row, nuint i, scoped in KvPlanes planes)
    {
        ref sbyte q = ref Unsafe.Add(ref Unsafe.As<byte, sbyte>(ref row), (nint)i);
        return QuantsAsFloats(EightBytes(ref q)) * Vector256.Create(ScaleOf(ref q, planes));
    }

    /// <summary>The low eight signed quants of <paramref name="q"/> as floats (exact: small integers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> QuantsAsFloats(Vector128<sbyte> q) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q));

    /// <summary>The eight quants from <paramref name="q"/> in the low half of a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<sbyte> EightBytes(ref sbyte q) =>
        Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<sbyte, byte>(ref q))).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(ref byte row, nint i, scoped in KvPlanes planes)
    {
        ref sbyte q = ref Unsafe.Add(ref Unsafe.As<byte, sbyte>(ref row), i);
        return q * ScaleOf(ref q, planes);
    }

    /// <summary>
    /// Quantizes one row (a whole number of groups) into <paramref name="quants"/> and one scale per group. A group
    /// holding an infinity or NaN stores q = 0 and d = Inf or NaN: it reads back as NaN, so the attention that uses it
    /// is NaN rather than silently finite.
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> row, Span<sbyte> quants, Span<float> scales, int group)
    {
        if (group <= 0 || row.Length % group != 0)
            throw new ArgumentException($"a row of {row.Length} elements is not a whole number of groups of {group}", nameof(row));
        if (quants.Length < row.Length || scales.Length < row.Length / group)
            throw new ArgumentException($"{row.Length} elements need {row.Length} quants and {row.Length / group} scales");
        for (int g = 0; g < row.Length / group; g++)
            scales[g] = QuantizeGroup(row.Slice(g * group, group), quants.Slice(g * group, group));
    }

    private static float QuantizeGroup(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        float amax = MaxAbs(x);
        if (!float.IsFinite(amax))
        {
            q.Clear();
            return amax;
        }
        float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
        int i = 0;
        // |d| < 2^-128 (the group's largest magnitude below ~3.7e-37): 1 / d overflows to infinity, and x x id would
        // turn into int.MinValue in the vector conversion; dividing by d keeps every code in [-127, 127].
        if (!float.IsFinite(id))
        {
            for (; i < x.Length; i++) q[i] = (sbyte)(int)MathF.Round(x[i] / d, MidpointRounding.ToEven);
            return d;
        }
        if (Avx2.IsSupported)
        {
            ref float src = ref MemoryMarshal.GetReference(x);
            ref byte dst = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(q));
            var scale = Vector256.Create(id);
            for (; i + 8 <= x.Length; i += 8)
            {
                Vector256<int> r = Avx.ConvertToVector256Int32(Avx.RoundToNearestInteger(Vector256.LoadUnsafe(ref src, (nuint)i) * scale));
                // |r| <= 127, so narrowing int -> short -> sbyte keeps every value.
                Vector128<short> shorts = Vector128.Narrow(r.GetLower(), r.GetUpper());
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, i), Vector128.Narrow(shorts, shorts).AsInt64().ToScalar());
            }
        }
        for (; i < x.Length; i++) q[i] = (sbyte)(int)MathF.Round(x[i] * id, MidpointRounding.ToEven);
        return d;
    }

    /// <summary>
    /// max |x|, or NaN if any is NaN. The magnitudes' bit patterns order as the values do, NaNs above infinity, so an
    /// integer maximum finds both, eight lanes at a time.
    /// </summary>
    private static float MaxAbs(ReadOnlySpan<float> x)
    {
        int i = 0, max = 0;
        ref int bits = ref Unsafe.As<float, int>(ref MemoryMarshal.GetReference(x));
        if (Avx2.IsSupported && x.Length >= 8)
        {
            var magnitude = Vector256.Create(int.MaxValue);
            Vector256<int> m = Vector256<int>.Zero;
            for (; i + 8 <= x.Length; i += 8) m = Avx2.Max(m, Vector256.LoadUnsafe(ref bits, (nuint)i) & magnitude);
            for (int lane = 0; lane < 8; lane++) max = Math.Max(max, m[lane]);
        }
        for (; i < x.Length; i++) max = Math.Max(max, Unsafe.Add(ref bits, i) & int.MaxValue);
        return BitConverter.Int32BitsToSingle(max);
    }

    /// <summary>dst[i] = q[i] x (float)scale of i's group.</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, int group, Span<float> dst)
    {
        if (group <= 0 || quants.Length % group != 0 || scales.Length < quants.Length / group || dst.Length < quants.Length)
            throw new ArgumentException($"{quants.Length} quants in groups of {group} need {quants.Length / Math.Max(1, group)} scales and as many outputs");
        Dequantize(ref MemoryMarshal.GetReference(quants), ref MemoryMarshal.GetReference(scales), quants.Length, group,
            ref MemoryMarshal.GetReference(dst));
    }

    /// <summary>
    /// <paramref name="count"/> elements (whole groups) from <paramref name="q"/>, scales from <paramref name="scale"/>,
    /// as floats at <paramref name="dst"/>. The caller guarantees the ranges.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Dequantize(ref sbyte q, ref float scale, int count, int group, ref float dst)
    {
        for (int g = 0; g < count / group; g++)
        {
            float d = Unsafe.Add(ref scale, g);
            int i = g * group, end = i + group;
            if (Avx2.IsSupported)
            {
                var vd = Vector256.Create(d);
                for (; i + 16 <= end; i += 16)
                {
                    Widen16(ref Unsafe.Add(ref q, i), vd, out Vector256<float> lower, out Vector256<float> upper);
                    lower.StoreUnsafe(ref dst, (nuint)i);
                    upper.StoreUnsafe(ref dst, (nuint)i + 8);
                }
                for (; i + 8 <= end; i += 8)
                    (QuantsAsFloats(EightBytes(ref Unsafe.Add(ref q, i))) * vd).StoreUnsafe(ref dst, (nuint)i);
            }
            for (; i < end; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref q, i) * d;
        }
    }
}
