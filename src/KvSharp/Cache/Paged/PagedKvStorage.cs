using KvSharp.Attention;
using KvSharp.Cache.Policies;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// The operations of a <see cref="PagedKvSequence"/> that depend on how rows are stored, created once per pool for its
/// element type (<see cref="KvElementFormat"/>): every call runs the type's strategy with no branch on the type.
/// </summary>
internal abstract class PagedKvStorage
{
    public abstract void Write(ReadOnlySpan<int> blocks, int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);
    public abstract void Attend(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch);
    public abstract void Prefetch(ReadOnlySpan<int> blocks, int layer, int kvHead, int end);
    /// <summary><see cref="Attend"/> over the positions a window policy keeps (<see cref="PolicyAttention"/>).</summary>
    public abstract void AttendKept(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        KeptSlots slots, SinkKeys? sinks);
    /// <summary><see cref="Attend"/> under a score-based policy (<see cref="ScoredAttention"/>): each head's held positions in its own slots.</summary>
    public abstract void AttendScored(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        ScoredHeads heads);
    /// <summary>Stores one head's key and value rows in <paramref name="slot"/> (block slot / BlockSize, row slot % BlockSize).</summary>
    public abstract void WriteSlot(ReadOnlySpan<int> blocks, int layer, int kvHead, int slot, ReadOnlySpan<float> key, ReadOnlySpan<float> value);
    /// <summary>Stores one head's key row at <paramref name="position"/> (a sink key rotated by its policy).</summary>
    public abstract void WriteKeyRow(ReadOnlySpan<int> blocks, int layer, int kvHead, int position, ReadOnlySpan<float> row);
}

/// <summary>Keys stored as <typeparamref name="TKey"/> in the pool's key planes, values as <typeparamref name="TValue"/> in its value planes.</summary>
internal sealed unsafe class PagedKvStorage<TKey, TValue>(KvBlockPool pool) : PagedKvStorage
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly int _headDim = pool.Config.HeadDim, _kvHeads = pool.Config.KvHeadCount, _size = pool.BlockSize;

    /// <summary>Stores one position's keys and values (kv_heads x head_dim each) for one layer, in its block's slot.</summary>
    public override void Write(ReadOnlySpan<int> blocks, int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int block = blocks[position / _size], slot = position % _size, hd = _headDim;
        for (int h = 0; h < _kvHeads; h++)
        {
            long row = pool.RowIndex(block, layer, h) + slot;
            WriteRow<TKey>(keys.Slice(h * hd, hd), pool.KeyPlane, pool.KeySidePlane, row);
            WriteRow<TValue>(values.Slice(h * hd, hd), pool.ValuePlane, pool.ValueSidePlane, row);
        }
    }

    private void WriteRow<TKv>(ReadOnlySpan<float> source, byte* plane, byte* sidePlane, long row) where TKv : struct, IKvElement<TKv>
    {
        int rowBytes = TKv.RowBytes(_headDim), sideBytes = TKv.SideBytes(_headDim);
        TKv.Write(source, new Span<byte>(plane + row * rowBytes, rowBytes), new Span<byte>(sidePlane + row * sideBytes, sideBytes));
    }

    public override void Attend(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) =>
        CausalAttention.Attend<PagedKvRows<TKey, TValue>, TKey, TValue>(block, new PagedKvRows<TKey, TValue>(pool, blocks, layer, kvHead), scale, scratch);

    public override void AttendKept(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        KeptSlots slots, SinkKeys? sinks) =>
        PolicyAttention.Attend<PagedKvRows<TKey, TValue>, TKey, TValue>(block, new PagedKvRows<TKey, TValue>(pool, blocks, layer, kvHead), slots, sinks, layer, kvHead, scale, scratch);

    public override void AttendScored(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        ScoredHeads heads) =>
        ScoredAttention.Attend<PagedKvRows<TKey, TValue>, TKey, TValue>(block, new PagedKvRows<TKey, TValue>(pool, blocks, layer, kvHead), heads, layer, kvHead, scale, scratch);

    public override void WriteSlot(ReadOnlySpan<int> blocks, int layer, int kvHead, int slot, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        long at = RowAt(blocks, layer, kvHead, slot);
        WriteRow<TKey>(key, pool.KeyPlane, pool.KeySidePlane, at);
        WriteRow<TValue>(value, pool.ValuePlane, pool.ValueSidePlane, at);
    }

    public override void WriteKeyRow(ReadOnlySpan<int> blocks, int layer, int kvHead, int position, ReadOnlySpan<float> row) =>
        WriteRow<TKey>(row, pool.KeyPlane, pool.KeySidePlane, RowAt(blocks, layer, kvHead, position));

    /// <summary>The pool row of one head's <paramref name="slot"/>: block table[slot / BlockSize], row slot % BlockSize.</summary>
    private long RowAt(ReadOnlySpan<int> blocks, int layer, int kvHead, int slot) => pool.RowIndex(blocks[slot / _size], layer, kvHead) + slot % _size;

    /// <summary>Asks for the first <see cref="KvPrefetch.Positions"/> rows of a head's keys and values, one run per block.</summary>
    public override void Prefetch(ReadOnlySpan<int> blocks, int layer, int kvHead, int end)
    {
        end = Math.Min(Math.Min(end, KvPrefetch.Positions), blocks.Length * _size);
        for (int start = 0; start < end; start += _size)
        {
            long row = pool.RowIndex(blocks[start / _size], layer, kvHead);
            int count = Math.Min(_size, end - start);
            TKey.Prefetch(ref pool.KeyPlane[row * pool.KeyRowBytes], ref pool.KeySidePlane[row * pool.KeySideBytes], count, _headDim);
            TValue.Prefetch(ref pool.ValuePlane[row * pool.ValueRowBytes], ref pool.ValueSidePlane[row * pool.ValueSideBytes], count, _headDim);
        }
    }
}
