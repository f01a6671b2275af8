using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Where the attention kernel finds the key and value rows of one layer and KV head, stored as
/// <typeparamref name="TKv"/>. Positions map to row indices (<see cref="RowOffsets"/>); row r's key elements start at
/// <see cref="KeyOrigin"/> + r x RowBytes and its side data at <see cref="KeySideOrigin"/> + r x SideBytes, its value
/// row at the value origins and the same index. The kernel asks for a tile's rows once and then walks them without a
/// lookup or a bounds check per position and query. Implemented by small structs so the kernel is specialised per
/// storage layout (contiguous rows, or rows behind a block table) and per element type with no virtual call.
/// </summary>
/// <typeparam name="TKv">How the rows are stored (<see cref="KvF32"/>, <see cref="KvF16"/>, <see cref="KvQ8"/>, ...).</typeparam>
public interface IKvRows<TKv> where TKv : struct, IKvElement<TKv>
{
    ref readonly byte KeyOrigin { get; }
    ref readonly byte ValueOrigin { get; }
    /// <summary>Origin of the keys' side data (a type without side data never reads it).</summary>
    ref readonly byte KeySideOrigin { get; }
    ref readonly byte ValueSideOrigin { get; }

    /// <summary>
    /// rows[i] = the row index of position start + i. Throws if a position is not stored, so every row the kernel
    /// reads lies inside the store.
    /// </summary>
    void RowOffsets(int start, scoped Span<nint> rows);

    /// <summary>
    /// True when a head's rows lie in short runs (a block each) rather than one stream: the kernel then asks for the
    /// next tile's rows ahead, which a streaming read leaves to the hardware prefetcher. A constant per layout.
    /// </summary>
    static abstract bool ShortRuns { get; }
}

/// <summary>Rows of one head laid out contiguously: position p is row p.</summary>
public readonly ref struct ContiguousKvRows<TKv> : IKvRows<TKv> where TKv : struct, IKvElement<TKv>
{
    private readonly ReadOnlySpan<byte> _keys;
    private readonly ReadOnlySpan<byte> _values;
    private readonly ReadOnlySpan<byte> _keySide;
    private readonly ReadOnlySpan<byte> _valueSide;
    private readonly int _rows;

    /// <summary>Rows of a type without side data (F32, F16).</summary>
    public ContiguousKvRows(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, int headDim) : this(keys, values, default, default, headDim) { }

    /// <summary>Rows of <paramref name="headDim"/> elements and their side data (Q8_0's scales), in the same order.</summary>
    public ContiguousKvRows(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<byte> keySide, ReadOnlySpan<byte> valueSide, int headDim)
    {
        int rowBytes = TKv.RowBytes(headDim), sideBytes = TKv.SideBytes(headDim);
        // Row indices are shared by keys and values, so both must hold the same rows.
        int rows = Math.Min(keys.Length, values.Length) / rowBytes;
        if (sideBytes > 0) rows = Math.Min(rows, Math.Min(keySide.Length, valueSide.Length) / sideBytes);
        _keys = keys;
        _values = values;
        _keySide = keySide;
        _valueSide = valueSide;
        _rows = rows;
    }

    public ref readonly byte KeyOrigin => ref MemoryMarshal.GetReference(_keys);
    public ref readonly byte ValueOrigin => ref MemoryMarshal.GetReference(_values);
    public ref readonly byte KeySideOrigin => ref MemoryMarshal.GetReference(_keySide);
    public ref readonly byte ValueSideOrigin => ref MemoryMarshal.GetReference(_valueSide);

    public void RowOffsets(int start, scoped Span<nint> rows)
    {
        if (start < 0 || (long)start + rows.Length > _rows)
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"positions [{start}, {start + rows.Length}) are outside the {_rows} stored rows");
        for (int i = 0; i < rows.Length; i++) rows[i] = start + i;
    }

    public static bool ShortRuns => false;
}

/// <summary>Contiguous rows from typed arrays, for callers holding floats or halves (tests, benchmarks).</summary>
public static class ContiguousKvRows
{
    public static ContiguousKvRows<KvF32> Of(ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), headDim);

    public static ContiguousKvRows<KvF16> Of(ReadOnlySpan<Half> keys, ReadOnlySpan<Half> values, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), headDim);

    /// <summary>Q8_0 rows: the integers, and one scale per group of them (<see cref="KvQ8.GroupSize"/>).</summary>
    public static ContiguousKvRows<KvQ8> Of(ReadOnlySpan<sbyte> keys, ReadOnlySpan<sbyte> values, ReadOnlySpan<float> keyScales,
        ReadOnlySpan<float> valueScales, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), MemoryMarshal.AsBytes(keyScales), MemoryMarshal.AsBytes(valueScales), headDim);
}
