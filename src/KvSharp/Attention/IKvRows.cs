using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Where the attention kernel finds the key and value rows of one layer and KV head, stored as
/// <typeparamref name="TKey"/> and <typeparamref name="TValue"/> (the same type, or two: llama.cpp's -ctk/-ctv).
/// Positions map to row indices (<see cref="RowOffsets"/>); row r's key elements start at <see cref="KeyOrigin"/> +
/// r x TKey.RowBytes and its side data at <see cref="KeySideOrigin"/> + r x TKey.SideBytes, its value row at the value
/// origins and the same index with TValue's sizes. The kernel asks for a tile's rows once and then walks them without a
/// lookup or a bounds check per position and query. Implemented by small structs so the kernel is specialised per
/// storage layout (contiguous rows, or rows behind a block table) and per element type with no virtual call.
/// </summary>
/// <typeparam name="TKey">How the key rows are stored (<see cref="KvF32"/>, <see cref="KvF16"/>, <see cref="KvQ8"/>, ...).</typeparam>
/// <typeparam name="TValue">How the value rows are stored.</typeparam>
public interface IKvRows<TKey, TValue> where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
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
