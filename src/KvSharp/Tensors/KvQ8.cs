using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// Rows of a Q8_0 KV cache (<see cref="Cache.KvElementType.Q8_0"/>): each group of <see cref="Cache.KvElementTypes.Q8Group"/>
/// elements becomes 8-bit integers q and one float scale d, as llama.cpp's q8_0 quantizer computes them:
/// d = max|x| / 127, q = round-half-even(x x (1 / d)) (the rounding of its AVX2 path), read back as q x d.
/// Eight lanes and the scalar loop give the same bits, so a row's storage never depends on the machine's vectors.
/// </summary>
public static class KvQ8
{
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
                    Vector128<sbyte> bytes = Vector128.LoadUnsafe(ref Unsafe.Add(ref q, i));
                    (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(bytes)) * vd).StoreUnsafe(ref dst, (nuint)i);
                    (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(bytes, 8))) * vd)
                        .StoreUnsafe(ref dst, (nuint)i + 8);
                }
                for (; i + 8 <= end; i += 8)
                {
                    Vector128<sbyte> bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<sbyte, byte>(ref Unsafe.Add(ref q, i)))).AsSByte();
                    (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(bytes)) * vd).StoreUnsafe(ref dst, (nuint)i);
                }
            }
            for (; i < end; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref q, i) * d;
        }
    }
}
