using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// Key/value rows of one layer and KV head found through a block table. Row indices count from the pool's planes;
/// a position's key and value rows have the same index in the key and the value planes, so one index serves both.
/// </summary>
public readonly unsafe ref struct PagedKvRows<TKey, TValue>(KvBlockPool pool, ReadOnlySpan<int> blocks, int layer, int kvHead)
    : IKvRows<TKey, TValue> where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly KvBlockPool _pool = pool;
    private readonly ReadOnlySpan<int> _blocks = blocks;
    private readonly int _layer = layer, _head = kvHead, _size = pool.BlockSize;

    public ref readonly byte KeyOrigin => ref *_pool.KeyPlane;
    public ref readonly byte ValueOrigin => ref *_pool.ValuePlane;
    public ref readonly byte KeySideOrigin => ref *_pool.KeySidePlane;
    public ref readonly byte ValueSideOrigin => ref *_pool.ValueSidePlane;

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
