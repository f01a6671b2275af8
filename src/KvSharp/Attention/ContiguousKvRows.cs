using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>Rows of one head laid out contiguously: position p is row p, keys stored as <typeparamref name="TKey"/>, values as <typeparamref name="TValue"/>.</summary>
public readonly ref struct ContiguousKvRows<TKey, TValue> : IKvRows<TKey, TValue>
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly ReadOnlySpan<byte> _keys;
    private readonly ReadOnlySpan<byte> _values;
    private readonly ReadOnlySpan<byte> _keySide;
    private readonly ReadOnlySpan<byte> _valueSide;
    private readonly int _rows;

    /// <summary>Rows of types without side data (F32, F16).</summary>
    public ContiguousKvRows(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, int headDim) : this(keys, values, default, default, headDim) { }

    /// <summary>Rows of <paramref name="headDim"/> elements and their side data (Q8_0's scales), in the same order.</summary>
    public ContiguousKvRows(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<byte> keySide, ReadOnlySpan<byte> valueSide, int headDim)
    {
        // Row indices are shared by keys and values, so both must hold the same rows.
        int rows = Math.Min(Rows<TKey>(keys, keySide, headDim), Rows<TValue>(values, valueSide, headDim));
        _keys = keys;
        _values = values;
        _keySide = keySide;
        _valueSide = valueSide;
        _rows = rows;
    }

    /// <summary>Whole rows (elements and side data) the planes of one side hold.</summary>
    private static int Rows<TKv>(ReadOnlySpan<byte> rows, ReadOnlySpan<byte> side, int headDim) where TKv : struct, IKvElement<TKv>
    {
        int count = rows.Length / TKv.RowBytes(headDim), sideBytes = TKv.SideBytes(headDim);
        return sideBytes > 0 ? Math.Min(count, (side.Length - TKv.SideHeaderBytes(headDim)) / sideBytes) : count;
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
    public static ContiguousKvRows<KvF32, KvF32> Of(ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), headDim);

    public static ContiguousKvRows<KvF16, KvF16> Of(ReadOnlySpan<Half> keys, ReadOnlySpan<Half> values, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), headDim);

    /// <summary>Q8_0 rows: the integers, and one scale per group of them (<see cref="KvQ8.GroupSize"/>).</summary>
    public static ContiguousKvRows<KvQ8, KvQ8> Of(ReadOnlySpan<sbyte> keys, ReadOnlySpan<sbyte> values, ReadOnlySpan<float> keyScales,
        ReadOnlySpan<float> valueScales, int headDim) =>
        new(MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), MemoryMarshal.AsBytes(keyScales), MemoryMarshal.AsBytes(valueScales), headDim);
}
