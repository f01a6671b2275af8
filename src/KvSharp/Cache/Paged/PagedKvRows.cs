using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// Key/value rows of one layer and KV head found through a block table. Row indices count from the pool's planes;
/// a position's key and value rows have the same index in the key and the value planes, so one index serves both.
/// A type whose rows do not stand alone (KIVI) reads its side from the sequence's header for the head instead
/// (<see cref="PagedExactRows"/>), which says where the pool's side data is.
/// </summary>
public readonly unsafe ref struct PagedKvRows<TKey, TValue> : IKvRows<TKey, TValue>
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly KvBlockPool _pool;
    private readonly ReadOnlySpan<int> _blocks;
    private readonly int _layer, _head, _size;
    private readonly byte* _keySide, _valueSide;

    public PagedKvRows(KvBlockPool pool, ReadOnlySpan<int> blocks, int layer, int kvHead) : this(pool, blocks, layer, kvHead, pool.KeySidePlane, pool.ValueSidePlane) { }

    internal PagedKvRows(KvBlockPool pool, ReadOnlySpan<int> blocks, int layer, int kvHead, byte* keySide, byte* valueSide)
    {
        _pool = pool;
        _blocks = blocks;
        _layer = layer;
        _head = kvHead;
        _size = pool.BlockSize;
        _keySide = keySide;
        _valueSide = valueSide;
    }

    public ref readonly byte KeyOrigin => ref *_pool.KeyPlane;
    public ref readonly byte ValueOrigin => ref *_pool.ValuePlane;
    public ref readonly byte KeySideOrigin => ref *_keySide;
    public ref readonly byte ValueSideOrigin => ref *_valueSide;

    public void RowOffsets(int start, scoped Span<nint> rows)
    {
        // One table lookup per block the positions cross, not per position.
        int position = start, i = 0;
        while (i < rows.Length)
        {
            int slot = position % _size, run = Math.Min(_size - slot, rows.Length - i);
            nint at = (nint)_pool.RowIndex(_blocks[position / _size], _layer, _head) + slot;
            for (int end = i + run; i < end; i++, at++) rows[i] = at;
            position += run;
        }
    }

    public static bool ShortRuns => true;
}
