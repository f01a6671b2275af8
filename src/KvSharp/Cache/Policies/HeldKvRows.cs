using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Policies;

/// <summary>
/// The rows a score-based policy holds for one layer and KV head, as the attention kernel's consecutive logical
/// positions 0..: logical i is the i-th held position (ascending), whose rows sit in slot <c>slots[i]</c> of the
/// storage's own rows. Runs of consecutive slots are asked for at once. After evictions the slots are scattered, so
/// the kernel is told the rows lie in short runs and asks for the next tile ahead.
/// </summary>
internal readonly ref struct HeldKvRows<TRows, TKey, TValue> : IKvRows<TKey, TValue>
    where TRows : IKvRows<TKey, TValue>, allows ref struct
    where TKey : struct, IKvElement<TKey>
    where TValue : struct, IKvElement<TValue>
{
    private readonly TRows _rows;
    private readonly ReadOnlySpan<int> _slots;

    public HeldKvRows(scoped in TRows rows, ReadOnlySpan<int> slots)
    {
        _rows = rows;
        _slots = slots;
    }

    public ref readonly byte KeyOrigin => ref _rows.KeyOrigin;
    public ref readonly byte ValueOrigin => ref _rows.ValueOrigin;
    public ref readonly byte KeySideOrigin => ref _rows.KeySideOrigin;
    public ref readonly byte ValueSideOrigin => ref _rows.ValueSideOrigin;

    public void RowOffsets(int start, scoped Span<nint> rows)
    {
        if (start < 0 || (long)start + rows.Length > _slots.Length)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"logical positions [{start}, {start + rows.Length}) are outside the {_slots.Length} held");
        int i = 0;
        while (i < rows.Length)
        {
            int slot = _slots[start + i], run = 1;
            while (i + run < rows.Length && _slots[start + i + run] == slot + run) run++;
            _rows.RowOffsets(slot, rows.Slice(i, run));
            i += run;
        }
    }

    public static bool ShortRuns => true;
}
