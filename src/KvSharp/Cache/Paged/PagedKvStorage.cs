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
    /// <summary>Stores one head's key row at <paramref name="position"/> (a sink key rotated by its policy).</summary>
    public abstract void WriteKeyRow(ReadOnlySpan<int> blocks, int layer, int kvHead, int position, ReadOnlySpan<float> row);
}

internal sealed unsafe class PagedKvStorage<TKv>(KvBlockPool pool) : PagedKvStorage where TKv : struct, IKvElement<TKv>
{
    private readonly int _headDim = pool.Config.HeadDim, _kvHeads = pool.Config.KvHeadCount, _size = pool.BlockSize;

    /// <summary>Stores one position's keys and values (kv_heads x head_dim each) for one layer, in its block's slot.</summary>
    public override void Write(ReadOnlySpan<int> blocks, int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int block = blocks[position / _size], slot = position % _size, hd = _headDim;
        int rowBytes = pool.RowBytes, sideBytes = pool.SideBytes;
        byte* rows = pool.ElementPlane, side = pool.SidePlane;
        for (int h = 0; h < _kvHeads; h++)
            for (int v = 0; v < 2; v++)
            {
                long row = pool.RowIndex(block, layer, v == 1, h) + slot;
                TKv.Write((v == 1 ? values : keys).Slice(h * hd, hd), new Span<byte>(rows + row * rowBytes, rowBytes),
                    new Span<byte>(side + row * sideBytes, sideBytes));
            }
    }

    public override void Attend(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) =>
        CausalAttention.Attend<PagedKvRows<TKv>, TKv>(block, new PagedKvRows<TKv>(pool, blocks, layer, kvHead), scale, scratch);

    public override void AttendKept(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        KeptSlots slots, SinkKeys? sinks) =>
        PolicyAttention.Attend<PagedKvRows<TKv>, TKv>(block, new PagedKvRows<TKv>(pool, blocks, layer, kvHead), slots, sinks, layer, kvHead, scale, scratch);

    public override void WriteKeyRow(ReadOnlySpan<int> blocks, int layer, int kvHead, int position, ReadOnlySpan<float> row)
    {
        long at = pool.RowIndex(blocks[position / _size], layer, false, kvHead) + position % _size;
        TKv.Write(row, new Span<byte>(pool.ElementPlane + at * pool.RowBytes, pool.RowBytes), new Span<byte>(pool.SidePlane + at * pool.SideBytes, pool.SideBytes));
    }

    /// <summary>Asks for the first <see cref="KvPrefetch.Positions"/> rows of a head's keys and values, one run per block.</summary>
    public override void Prefetch(ReadOnlySpan<int> blocks, int layer, int kvHead, int end)
    {
        int rowBytes = pool.RowBytes, sideBytes = pool.SideBytes;
        long values = pool.RowsFromKeysToValues;
        end = Math.Min(Math.Min(end, KvPrefetch.Positions), blocks.Length * _size);
        for (int start = 0; start < end; start += _size)
        {
            long keys = pool.RowIndex(blocks[start / _size], layer, false, kvHead);
            int count = Math.Min(_size, end - start);
            TKv.Prefetch(ref pool.ElementPlane[keys * rowBytes], ref pool.SidePlane[keys * sideBytes], count, _headDim);
            TKv.Prefetch(ref pool.ElementPlane[(keys + values) * rowBytes], ref pool.SidePlane[(keys + values) * sideBytes], count, _headDim);
        }
    }
}
