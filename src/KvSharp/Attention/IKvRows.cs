using System.Runtime.InteropServices;

namespace KvSharp.Attention;

/// <summary>
/// Where the attention kernel finds the key and value rows of one layer and KV head. A position's key row starts
/// at <see cref="KeyOrigin"/> + offset and its value row at <see cref="ValueOrigin"/> + the same offset; the kernel
/// asks for a tile's offsets once (<see cref="RowOffsets"/>) and then walks the rows without a lookup or a bounds
/// check per position and query. Implemented by small structs so the kernel is specialised per storage layout
/// (contiguous rows, or rows behind a block table) and per element type (<see cref="float"/> or <see cref="Half"/>)
/// with no virtual call.
/// </summary>
/// <typeparam name="TElement">How a stored key or value element is held: float, Half (an F16 cache) or sbyte (the
/// integers of a Q8_0 cache, whose scales the rows also locate).</typeparam>
public interface IKvRows<TElement> where TElement : unmanaged
{
    ref readonly TElement KeyOrigin { get; }
    ref readonly TElement ValueOrigin { get; }

    /// <summary>
    /// Q8_0 rows only: the scale of the key element at offset o lies at KeyScaleOrigin + o / <see cref="ScaleGroup"/>
    /// (rows start at multiples of the group). A null reference for float and Half rows.
    /// </summary>
    ref readonly float KeyScaleOrigin { get; }
    ref readonly float ValueScaleOrigin { get; }
    /// <summary>Elements per scale (Q8_0), or 0.</summary>
    int ScaleGroup { get; }

    /// <summary>
    /// offsets[i] = where the rows of position start + i begin, in elements from the origins. Throws if a position
    /// is not stored, so every row the kernel reads lies inside the store.
    /// </summary>
    void RowOffsets(int start, scoped Span<nint> offsets);

    /// <summary>
    /// True when a head's rows lie in short runs (a block each) rather than one stream: the kernel then asks for the
    /// next tile's rows ahead, which a streaming read leaves to the hardware prefetcher. A constant per layout.
    /// </summary>
    static abstract bool ShortRuns { get; }
}

/// <summary>Rows of one head laid out contiguously: row p at p x headDim.</summary>
public readonly ref struct ContiguousKvRows<TElement> : IKvRows<TElement> where TElement : unmanaged
{
    private readonly ReadOnlySpan<TElement> _keys;
    private readonly ReadOnlySpan<TElement> _values;
    private readonly ReadOnlySpan<float> _keyScales;
    private readonly ReadOnlySpan<float> _valueScales;
    private readonly int _headDim;

    public ContiguousKvRows(ReadOnlySpan<TElement> keys, ReadOnlySpan<TElement> values, int headDim)
    {
        if (typeof(TElement) == typeof(sbyte))
            throw new ArgumentException("Q8_0 rows need their scales (the constructor that takes them)", nameof(keys));
        // Offsets are shared by keys and values, so both must hold the same rows.
        int rows = Math.Min(keys.Length, values.Length) / headDim;
        _keys = keys[..(rows * headDim)];
        _values = values[..(rows * headDim)];
        _headDim = headDim;
    }

    /// <summary>Q8_0 rows: the integers, and one scale per <paramref name="group"/> of them.</summary>
    public ContiguousKvRows(ReadOnlySpan<TElement> keys, ReadOnlySpan<TElement> values, ReadOnlySpan<float> keyScales,
        ReadOnlySpan<float> valueScales, int headDim, int group)
    {
        if (typeof(TElement) != typeof(sbyte)) throw new ArgumentException("only Q8_0 rows (sbyte) have scales", nameof(keyScales));
        if (group <= 0 || headDim % group != 0)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"head_dim {headDim} is not a whole number of groups of {group}");
        int rows = Math.Min(Math.Min(keys.Length, values.Length) / headDim,
            Math.Min(keyScales.Length, valueScales.Length) / (headDim / group));
        _keys = keys[..(rows * headDim)];
        _values = values[..(rows * headDim)];
        _keyScales = keyScales[..(rows * headDim / group)];
        _valueScales = valueScales[..(rows * headDim / group)];
        _headDim = headDim;
        ScaleGroup = group;
    }

    public ref readonly TElement KeyOrigin => ref MemoryMarshal.GetReference(_keys);
    public ref readonly TElement ValueOrigin => ref MemoryMarshal.GetReference(_values);
    public ref readonly float KeyScaleOrigin => ref MemoryMarshal.GetReference(_keyScales);
    public ref readonly float ValueScaleOrigin => ref MemoryMarshal.GetReference(_valueScales);
    public int ScaleGroup { get; }

    public void RowOffsets(int start, scoped Span<nint> offsets)
    {
        if (start < 0 || (long)(start + offsets.Length) * _headDim > _keys.Length)
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"positions [{start}, {start + offsets.Length}) are outside the {_keys.Length / _headDim} stored rows");
        nint at = (nint)start * _headDim;
        for (int i = 0; i < offsets.Length; i++, at += _headDim) offsets[i] = at;
    }

    public static bool ShortRuns => false;
}
