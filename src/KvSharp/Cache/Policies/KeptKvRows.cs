using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Policies;

/// <summary>
/// The rows one query (or a block of queries that all still see everything) attends to under a window policy, as the
/// attention kernel's consecutive positions 0..: logical i below the sinks is position i, the rest are the window from
/// <c>windowStart</c>; each position's slot (<see cref="KeptSlots.Slot"/>) is found in the storage's own rows. Runs of
/// consecutive slots are asked for at once, so a tile costs a lookup per run (sinks, ring up to its wrap, the rest).
/// </summary>
internal readonly ref struct KeptKvRows<TRows, TKey, TValue> : IKvRows<TKey, TValue>
    where TRows : IKvRows<TKey, TValue>, allows ref struct
    where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
{
    private readonly TRows _rows;
    private readonly KeptSlots _slots;
    private readonly int _windowStart;

    public KeptKvRows(scoped in TRows rows, KeptSlots slots, int windowStart)
    {
        _rows = rows;
        _slots = slots;
        _windowStart = windowStart;
    }

    public ref readonly byte KeyOrigin => ref _rows.KeyOrigin;
    public ref readonly byte ValueOrigin => ref _rows.ValueOrigin;
    public ref readonly byte KeySideOrigin => ref _rows.KeySideOrigin;
    public ref readonly byte ValueSideOrigin => ref _rows.ValueSideOrigin;

    public void RowOffsets(int start, scoped Span<nint> rows)
    {
        int sinks = _slots.Sinks, i = 0;
        while (i < rows.Length)
        {
            int logical = start + i, slot, run;
            if (logical < sinks)
            {
                slot = logical;
                run = Math.Min(rows.Length - i, sinks - logical);
            }
            else
            {
                int inRing = (_windowStart + logical - sinks - sinks) % _slots.RingRows;
                slot = sinks + inRing;
                run = Math.Min(rows.Length - i, _slots.RingRows - inRing);
            }
            _rows.RowOffsets(slot, rows.Slice(i, run));
            i += run;
        }
    }

    public static bool ShortRuns => TRows.ShortRuns;
}
