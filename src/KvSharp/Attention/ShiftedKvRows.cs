using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// The rows of positions from <c>from</c> on, numbered from 0: what one token under a sliding window reads
/// (<see cref="CausalAttention"/>'s windowed path). Only the lookup moves; the rows are the store's own.
/// </summary>
internal readonly ref struct ShiftedKvRows<TRows, TKey, TValue> : IKvRows<TKey, TValue>
    where TRows : IKvRows<TKey, TValue>, allows ref struct
    where TKey : struct, IKvElement<TKey>
    where TValue : struct, IKvElement<TValue>
{
    private readonly TRows _rows;
    private readonly int _from;

    public ShiftedKvRows(scoped in TRows rows, int from)
    {
        _rows = rows;
        _from = from;
    }

    public ref readonly byte KeyOrigin => ref _rows.KeyOrigin;
    public ref readonly byte ValueOrigin => ref _rows.ValueOrigin;
    public ref readonly byte KeySideOrigin => ref _rows.KeySideOrigin;
    public ref readonly byte ValueSideOrigin => ref _rows.ValueSideOrigin;

    public void RowOffsets(int start, scoped Span<nint> rows) => _rows.RowOffsets(_from + start, rows);

    public static bool ShortRuns => TRows.ShortRuns;
}
