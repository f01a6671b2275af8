using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// Key/value rows of one layer and KV head found through a block table. Row indices count from the pool's planes;
/// a block keeps a layer's V rows a fixed number of rows after its K rows, so one index serves both.
/// </summary>
public readonly unsafe ref struct PagedKvRows<TKv>(KvBlockPool pool, ReadOnlySpan<int> blocks, int layer, int kvHead)
    : IKvRows<TKv> where TKv : struct, IKvElement<TKv>
{
    private readonly KvBlockPool _pool = pool;
    private readonly ReadOnlySpan<int> _blocks = blocks;
    private readonly int _layer = layer, _head = kvHead, _size = pool.BlockSize;

    public ref readonly byte KeyOrigin => ref *_pool.ElementPlane;
    public ref readonly byte ValueOrigin => ref *(_pool.ElementPlane + _pool.RowsFromKeysToValues * _pool.RowBytes);
    public ref readonly byte KeySideOrigin => ref *_pool.SidePlane;
    public ref readonly byte ValueSideOrigin => ref *(_pool.SidePlane + _pool.RowsFromKeysToValues * _pool.SideBytes);

    public void RowOffsets(int start, scoped Span<nint> rows)
    {
        // One table lookup per block the positions cross, not per position.
        int position = start, i = 0;
        while (i < rows.Length)
        {
            int slot = position % _size, run = Math.Min(_size - slot, rows.Length - i);
            nint at = (nint)_pool.RowIndex(_blocks[position / _size], _layer, false, _head) + slot;
            for (int end = i + run; i < end; i++, at++) rows[i] = at;
            position += run;
        }
    }

    public static bool ShortRuns => true;
}
