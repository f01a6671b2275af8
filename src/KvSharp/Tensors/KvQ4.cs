using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// KV elements as Q4_0, like llama.cpp's q4_0 cache type: each group of <see cref="GroupSize"/> elements of a row
/// becomes 4-bit integers q in 0..15 and one float scale d, as llama.cpp's reference quantizer
/// (quantize_row_q4_0_ref) computes them: m = the group's element of largest magnitude (the first, on a tie),
/// d = m / -8, q = min(15, trunc(x x (1 / d) + 8.5)), read back as (q - 8) x d. So m comes back as -8 x d (itself, up to
/// the rounding of 1 / d) and every element within half a step |d| / 2, except on the side opposite m: there the range
/// ends at +7 steps (the clamp at 15), so an element beyond 7.5 steps (up to -m) comes back within one step |d|.
/// The scale is kept as a float, not binary16 as in llama.cpp's blocks, for the reason <see cref="KvQ8"/> gives.
/// Two elements share a byte in element order (element 2k in the low nibble of byte k, 2k + 1 in the high one), not
/// llama.cpp's pairing of j with j + 16 within a block: so every even column c lies <see cref="RowBytes"/>(c) bytes
/// into a row, which the attention kernel's in-register loads need. A row's nibbles lie in the element plane, its
/// scales in the side plane (row r's at r x head_dim / group floats).
/// Attention reads the values (q - 8) x d, exactly as float rows holding them would: in registers for decode blocks
/// where head_dim is a multiple of 32, else from a dequantized tile.
/// </summary>
public readonly struct KvQ4 : IKvElement<KvQ4>
{
    public static string Name => "Q4_0";

    /// <summary>Elements per scale: 32 (llama.cpp's block), or a whole row where head_dim is not a multiple of 32.</summary>
    public static int GroupSize(int headDim) => headDim % Block == 0 ? Block : headDim;

    private const int Block = 32;

    /// <summary>The stored integer that stands for 0: q - 8 is the multiple of d an element is read back as.</summary>
    private const int Zero = 8;

    /// <summary>Half a byte per element (an odd head_dim, one group per row, leaves the last high nibble unused).</summary>
    public static int RowBytes(int headDim) => (headDim + 1) / 2;

    public static int SideBytes(int headDim) => headDim / GroupSize(headDim) * sizeof(float);

    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) =>
        Quantize(source, row, MemoryMarshal.Cast<byte, float>(side), GroupSize(source.Length));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        Dequantize(ref row, ref Unsafe.As<byte, float>(ref side), headDim, GroupSize(headDim), ref destination);

    /// <summary>
    /// Decode blocks (up to four queries) read (q - 8) x d in registers (AVX2) where head_dim is a multiple of 32: the
    /// kernel then starts every load at a column that is a multiple of 8, whose byte is <see cref="RowBytes"/>(column)
    /// and whose group's scale is found from that byte's address. Others dequantize each tile.
    /// </summary>
    public static int MaxQueriesInRegisters(int headDim) => Avx2.IsSupported && GroupSize(headDim) == Block ? 4 : 0;

    /// <summary>
    /// The scale of the group holding the byte at <paramref name="b"/>: in groups of 32 a group is 16 bytes and rows
    /// start at multiples of it, so the scale lies at (byte distance from the element plane's origin) / 16 in the side
    /// plane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScaleOf(ref byte b, scoped in KvPlanes planes) =>
        Unsafe.Add(ref Unsafe.As<byte, float>(ref planes.Side), (nint)Unsafe.ByteOffset(ref planes.Elements, ref b) >> 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> lower, out Vector256<float> upper)
    {
        ref byte b = ref Unsafe.Add(ref row, (nint)(i >> 1));
        var d = Vector256.Create(ScaleOf(ref b, planes));
        // q - 8 taken once for the sixteen bytes, as signed bytes, rather than per eight int32 lanes (Centered, which
        // Load8 and Dequantize use, widens first). Written out: the same arithmetic through helpers (one more level of
        // inlining under the score and value kernels) made Q4_0 decode attention alone 1.3-1.4x slower (decode-attention
        // 30 1 990:2048 q4_0, 2.9-3.2 against 2.2-2.4 ms).
        Vector128<sbyte> q = (Unpack(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(ref b)).AsByte()) - Vector128.Create((byte)Zero)).AsSByte();
        lower = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)) * d;
        upper = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(q, 8))) * d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ref byte row, nuint i, scoped in KvPlanes planes)
    {
        ref byte b = ref Unsafe.Add(ref row, (nint)(i >> 1));
        Vector128<byte> q = Unpack(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<uint>(ref b)).AsByte());
        return Centered(q) * Vector256.Create(ScaleOf(ref b, planes));
    }

    /// <summary>Element i of a row whose reference is at an even column (every column the kernel reads it from).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(ref byte row, nint i, scoped in KvPlanes planes)
    {
        ref byte b = ref Unsafe.Add(ref row, i >> 1);
        return (((b >> (int)((i & 1) * 4)) & 15) - Zero) * ScaleOf(ref b, planes);
    }

    /// <summary>
    /// The nibbles of the low 8 bytes of <paramref name="bytes"/> as 16 bytes in element order: byte k's low nibble,
    /// then its high one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Unpack(Vector128<byte> bytes)
    {
        var mask = Vector128.Create((byte)15);
        return Sse2.UnpackLow(bytes & mask, Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask);
    }

    /// <summary>q - 8 of the low 8 bytes of <paramref name="q"/>, as floats (exact: small integers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Centered(Vector128<byte> q) =>
        Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q) - Vector256.Create(Zero));

    /// <summary>
    /// Quantizes one row (a whole number of groups) into <paramref name="packed"/> (two elements a byte, see
    /// <see cref="KvQ4"/>) and one scale per group. A group holding an infinity or NaN stores q = 8 (zero) and d = Inf,
    /// or NaN if it holds a NaN: it reads back as 0 x d = NaN, so the attention that uses it is NaN rather than
    /// silently finite (llama.cpp's quantizer leaves such a group undefined: it converts NaN to an integer).
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> row, Span<byte> packed, Span<float> scales, int group)
    {
        if (group <= 0 || row.Length % group != 0)
            throw new ArgumentException($"a row of {row.Length} elements is not a whole number of groups of {group}", nameof(row));
        if (row.Length > group && group % 2 != 0)
            throw new ArgumentException($"groups of {group} elements do not fill whole bytes of two elements", nameof(group));
        if (packed.Length < RowBytes(row.Length) || scales.Length < row.Length / group)
            throw new ArgumentException($"{row.Length} elements need {RowBytes(row.Length)} bytes and {row.Length / group} scales");
        packed[..RowBytes(row.Length)].Clear();
        for (int g = 0; g < row.Length / group; g++)
            scales[g] = QuantizeGroup(row.Slice(g * group, group), packed, g * group);
    }

    /// <summary>One group, its first element at index <paramref name="first"/> of the row; returns its scale.</summary>
    private static float QuantizeGroup(ReadOnlySpan<float> x, Span<byte> packed, int first)
    {
        float amax = 0, max = 0, nonFinite = 0;
        foreach (float v in x)
        {
            if (!float.IsFinite(v)) nonFinite = float.IsNaN(v) || float.IsNaN(nonFinite) ? float.NaN : float.PositiveInfinity;
            else if (amax < Math.Abs(v))
            {
                amax = Math.Abs(v);
                max = v;
            }
        }
        if (nonFinite != 0)
        {
            for (int i = 0; i < x.Length; i++) SetNibble(packed, first + i, Zero);
            return nonFinite;
        }
        float d = max / -8f, id = d != 0 ? 1f / d : 0f;
        // x x id lies in [-8, 8] up to rounding, so x x id + 8.5 is positive and truncating it is llama.cpp's (int8_t) cast.
        if (float.IsFinite(id))
            for (int i = 0; i < x.Length; i++) SetNibble(packed, first + i, Math.Min(15, (int)(x[i] * id + 8.5f)));
        else // |d| < 2^-128 (the group's largest magnitude below ~2.4e-38): 1 / d overflows, where llama.cpp's result is undefined
            for (int i = 0; i < x.Length; i++) SetNibble(packed, first + i, Math.Min(15, (int)(x[i] / d + 8.5f)));
        return d;
    }

    private static void SetNibble(Span<byte> packed, int element, int q) => packed[element >> 1] |= (byte)(q << ((element & 1) * 4));

    /// <summary>dst[i] = (q[i] - 8) x scale of i's group, for the <paramref name="count"/> elements of <paramref name="packed"/>.</summary>
    public static void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> scales, int count, int group, Span<float> dst)
    {
        if (group <= 0 || count % group != 0 || packed.Length < RowBytes(count) || scales.Length < count / group || dst.Length < count)
            throw new ArgumentException($"{count} elements in groups of {group} need {RowBytes(count)} bytes, {count / Math.Max(1, group)} scales and as many outputs");
        Dequantize(ref MemoryMarshal.GetReference(packed), ref MemoryMarshal.GetReference(scales), count, group, ref MemoryMarshal.GetReference(dst));
    }

    /// <summary>
    /// <paramref name="count"/> elements (whole groups) from <paramref name="packed"/>, scales from
    /// <paramref name="scale"/>, as floats at <paramref name="dst"/>. The caller guarantees the ranges. Sixteen at a
    /// time where groups hold whole 16-element chunks; both paths compute (float)(q - 8) x d, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Dequantize(ref byte packed, ref float scale, int count, int group, ref float dst)
    {
        for (int g = 0; g < count / group; g++)
        {
            float d = Unsafe.Add(ref scale, g);
            int i = g * group, end = i + group;
            if (Avx2.IsSupported && group % 16 == 0)
            {
                var vd = Vector256.Create(d);
                for (; i < end; i += 16)
                {
                    Vector128<byte> q = Unpack(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref packed, i >> 1))).AsByte());
                    (Centered(q) * vd).StoreUnsafe(ref dst, (nuint)i);
                    (Centered(Sse2.ShiftRightLogical128BitLane(q, 8)) * vd).StoreUnsafe(ref dst, (nuint)i + 8);
                }
            }
            for (; i < end; i++)
                Unsafe.Add(ref dst, i) = (((Unsafe.Add(ref packed, i >> 1) >> ((i & 1) * 4)) & 15) - Zero) * d;
        }
    }
}
