using System.Runtime.CompilerServices;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// The rows a tile of attention over short runs (paged blocks) asks for while it computes, a few rows at a time, so
/// each arrives shortly before it is read: the tile's value rows while its keys are scored, the next tile's key rows
/// while its values are summed, and in an item's first tile its own key rows <see cref="Lead"/> ahead of the scores.
/// </summary>
/// <remarks>
/// Why a few at a time: a core holds only a few dozen misses in flight, so a burst of prefetches for a whole tile (the
/// next tile's 32 key and 32 value rows, 16 KiB of F32 at head_dim 64, as before) stalls at its own issue until most
/// of it has arrived, and the tile's arithmetic waits behind it. Spread out, the requests keep the memory busy while
/// the arithmetic runs. Decode attention alone (`small`, F32 KV, one thread, rows evicted between passes,
/// `paged-attention` in bench/KvSharp.Benchmarks), this against the bursts: 16 sequences of 64 positions 4.1 ms
/// against 4.8; one of 2,048 7.2-7.4 against 9.4-9.5; four of 512 7.0 against 9.5. Asking twice as far ahead was no
/// faster. Only a hint: no result changes.
/// </remarks>
internal readonly ref struct TileAhead<TKey, TValue>
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    /// <summary>Keys scored (or values summed) per step, and how far ahead of the scores a first tile asks for its keys.</summary>
    public const int Lead = 8;

    private readonly KvPlanes _keys, _values;
    private readonly ReadOnlySpan<nint> _tileRows, _ownKeys, _nextKeys;
    private readonly int _headDim;

    /// <param name="tileRows">This tile's row indices: its value rows are asked for while its keys are scored.</param>
    /// <param name="firstTile">Whether nothing asked for this tile's keys earlier (an item's first tile).</param>
    /// <param name="nextKeys">The next tile's row indices (empty for the last tile).</param>
    public TileAhead(scoped in KvPlanes keys, scoped in KvPlanes values, ReadOnlySpan<nint> tileRows, bool firstTile, ReadOnlySpan<nint> nextKeys,
        int headDim)
    {
        _keys = new KvPlanes(ref keys.Elements, ref keys.Side);
        _values = new KvPlanes(ref values.Elements, ref values.Side);
        _tileRows = tileRows;
        _ownKeys = firstTile ? tileRows : default;
        _nextKeys = nextKeys;
        _headDim = headDim;
    }

    /// <summary>Nothing to ask for: rows that stream, or tiles read into floats before they compute.</summary>
    public bool IsEmpty => _tileRows.IsEmpty;

    /// <summary>While keys [from, from + Lead) are scored: their value rows, and a first tile's keys Lead further on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WhileScoring(int from)
    {
        Ask<TValue>(_values, _tileRows, from);
        if (!_ownKeys.IsEmpty) Ask<TKey>(_keys, _ownKeys, from + Lead);
    }

    /// <summary>The first keys of a first tile, before its scores start.</summary>
    public void BeforeScoring()
    {
        if (!_ownKeys.IsEmpty) Ask<TKey>(_keys, _ownKeys, 0);
    }

    /// <summary>While the values of keys [from, from + Lead) are summed: the next tile's key rows from the same place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WhileSumming(int from) => Ask<TKey>(_keys, _nextKeys, from);

    /// <summary>Rows [from, from + Lead) of <paramref name="rows"/> (those that exist), one request per row.</summary>
    private void Ask<TKv>(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int from) where TKv : struct, IKvElement<TKv>
    {
        if (from < rows.Length) CausalAttention.PrefetchRows<TKv>(planes, rows[from..Math.Min(from + Lead, rows.Length)], _headDim);
    }
}
