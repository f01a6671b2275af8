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
    /// <summary>What a sequence keeps outside the pool, for a type whose rows do not stand alone (KIVI); null for the others.</summary>
    public abstract PagedExactRows? NewExactRows();
    /// <summary>Before a step of positions [<paramref name="from"/>, <paramref name="length"/>): room for its pending rows, and every header bound to the blocks.</summary>
    public abstract void Prepare(PagedExactRows exact, ReadOnlySpan<int> blocks, int from, int length);
    /// <summary>Forgets positions [<paramref name="from"/>, <paramref name="to"/>) of the pending rows and quantized groups.</summary>
    public abstract void Truncate(PagedExactRows exact, int from, int to);
    public abstract void Write(ReadOnlySpan<int> blocks, int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, PagedExactRows? exact);
    public abstract void Attend(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, PagedExactRows? exact);
    public abstract void Prefetch(ReadOnlySpan<int> blocks, int layer, int kvHead, int end);
    /// <summary>
    /// One decode token's attention for KV heads [<paramref name="firstHead"/>, firstHead + <paramref name="heads"/>)
    /// tile by tile across the heads (<see cref="CausalAttention.AttendHeads"/>); false, doing nothing, where this
    /// storage's types cannot (the caller then attends head by head).
    /// </summary>
    public abstract bool TryAttendHeads(ReadOnlySpan<int> blocks, int layer, int firstHead, int heads, ReadOnlySpan<float> queries, Span<float> output,
        int position, float scale, Span<float> scratch, int scratchStride, PagedExactRows? exact, ReadOnlySpan<float> sinkLogits);
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

/// <summary>
/// Keys stored as <typeparamref name="TKey"/> in the pool's key planes, values as <typeparamref name="TValue"/> in its
/// value planes, or, where the pool stores each row once (<see cref="KvBlockPool.ValuesAreKeys"/>), not at all: the
/// value planes are the key planes, so the key row written is the value row read.
/// </summary>
internal sealed unsafe class PagedKvStorage<TKey, TValue>(KvBlockPool pool) : PagedKvStorage
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly int _headDim = pool.Config.HeadDim, _kvHeads = pool.Config.KvHeadCount, _size = pool.BlockSize;
    private readonly bool _rowsOnce = pool.ValuesAreKeys;

    /// <summary>
    /// Stores one position's keys and values (kv_heads x head_dim each) for one layer, in its block's slot, or, for a
    /// side whose rows do not stand alone, among the sequence's pending rows (quantized into the block in a settle).
    /// </summary>
    public override void Write(ReadOnlySpan<int> blocks, int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        PagedExactRows? exact)
    {
        int block = blocks[position / _size], slot = position % _size, hd = _headDim;
        for (int h = 0; h < _kvHeads; h++)
        {
            long row = pool.RowIndex(block, layer, h) + slot;
            if (TKey.RowsStandAlone) WriteRow<TKey>(keys.Slice(h * hd, hd), pool.KeyPlane, pool.KeySidePlane, row);
            else TKey.WriteRow(keys.Slice(h * hd, hd), default, exact!.Header(exact.Index(layer, false, h)), position, hd);
            // Where the pool stores each row once the value row is the key row just written.
            if (_rowsOnce) continue;
            if (TValue.RowsStandAlone) WriteRow<TValue>(values.Slice(h * hd, hd), pool.ValuePlane, pool.ValueSidePlane, row);
            else TValue.WriteRow(values.Slice(h * hd, hd), default, exact!.Header(exact.Index(layer, true, h)), position, hd);
        }
    }

    public override PagedExactRows? NewExactRows() => TKey.RowsStandAlone && TValue.RowsStandAlone ? null
        : new PagedExactRows(pool.Config.LayerCount, _kvHeads, Math.Max(TKey.SideHeaderBytes(_headDim), TValue.SideHeaderBytes(_headDim)));

    public override void Prepare(PagedExactRows exact, ReadOnlySpan<int> blocks, int from, int length)
    {
        exact.CopyTable(blocks);
        exact.From = from;
        exact.End = length;
        fixed (int* table = exact.Table)
        fixed (int* positions = pool.BlockPositions)
            for (int layer = 0; layer < pool.Config.LayerCount; layer++)
                for (int h = 0; h < _kvHeads; h++)
                {
                    long offset = pool.RowIndex(0, layer, h);
                    if (!TKey.RowsStandAlone)
                        PrepareHead<TKey>(exact, exact.Index(layer, false, h), length, pool.KeyRotation,
                            new KvPaging((nint)table, (nint)positions, (nint)pool.KeyPlane, (nint)pool.KeySidePlane, pool.RowsPerSide, offset, _size));
                    if (!TValue.RowsStandAlone)
                        PrepareHead<TValue>(exact, exact.Index(layer, true, h), length, null,
                            new KvPaging((nint)table, (nint)positions, (nint)pool.ValuePlane, (nint)pool.ValueSidePlane, pool.RowsPerSide, offset, _size));
                }
    }

    private void PrepareHead<TKv>(PagedExactRows exact, int index, int length, RotaryTable? rotation, in KvPaging paging) where TKv : struct, IKvElement<TKv>
    {
        TKv.Page(exact.Header(index), paging);
        TKv.Prepare(exact.Header(index), length, _headDim, ref exact.Pending[index], rotation);
    }

    /// <summary>Quantizes one head's groups the step's queries read quantized, once per step: every attention of the step calls it first.</summary>
    private void Settle(PagedExactRows exact, int layer, int kvHead)
    {
        lock (exact.Settling)
        {
            if (!TKey.RowsStandAlone) TKey.Settle(default, exact.Header(exact.Index(layer, false, kvHead)), exact.From, exact.End, _headDim);
            if (!TValue.RowsStandAlone) TValue.Settle(default, exact.Header(exact.Index(layer, true, kvHead)), exact.From, exact.End, _headDim);
        }
    }

    public override void Truncate(PagedExactRows exact, int from, int to)
    {
        for (int layer = 0; layer < pool.Config.LayerCount; layer++)
            for (int h = 0; h < _kvHeads; h++)
            {
                if (!TKey.RowsStandAlone) TKey.ClearRows(default, exact.Header(exact.Index(layer, false, h)), from, to, _headDim);
                if (!TValue.RowsStandAlone) TValue.ClearRows(default, exact.Header(exact.Index(layer, true, h)), from, to, _headDim);
            }
        exact.From = Math.Min(exact.From, from);
        exact.End = Math.Min(exact.End, from);
    }

    private void WriteRow<TKv>(ReadOnlySpan<float> source, byte* plane, byte* sidePlane, long row) where TKv : struct, IKvElement<TKv>
    {
        int rowBytes = TKv.RowBytes(_headDim), sideBytes = TKv.SideBytes(_headDim);
        TKv.Write(source, new Span<byte>(plane + row * rowBytes, rowBytes), new Span<byte>(sidePlane + row * sideBytes, sideBytes));
    }

    public override void Attend(ReadOnlySpan<int> blocks, int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch,
        PagedExactRows? exact)
    {
        if (exact == null)
        {
            CausalAttention.Attend<PagedKvRows<TKey, TValue>, TKey, TValue>(block, new PagedKvRows<TKey, TValue>(pool, blocks, layer, kvHead), scale, scratch);
            return;
        }
        Settle(exact, layer, kvHead);
        byte* keySide = TKey.RowsStandAlone ? pool.KeySidePlane : exact.HeaderAddress(exact.Index(layer, false, kvHead));
        byte* valueSide = TValue.RowsStandAlone ? pool.ValueSidePlane : exact.HeaderAddress(exact.Index(layer, true, kvHead));
        CausalAttention.Attend<PagedKvRows<TKey, TValue>, TKey, TValue>(block, new PagedKvRows<TKey, TValue>(pool, blocks, layer, kvHead, keySide, valueSide),
            scale, scratch);
    }

    public override bool TryAttendHeads(ReadOnlySpan<int> blocks, int layer, int firstHead, int heads, ReadOnlySpan<float> queries, Span<float> output,
        int position, float scale, Span<float> scratch, int scratchStride, PagedExactRows? exact, ReadOnlySpan<float> sinkLogits)
    {
        int group = pool.Config.GroupSize, width = group * _headDim, most = CausalAttention.MostHeadsTogether<TKey, TValue>(group, _headDim);
        if (exact != null || most == 0) return false;
        for (int from = 0; from < heads; from += most)
        {
            int count = Math.Min(most, heads - from);
            // A block holds a layer's heads one after another, BlockSize rows each (KvBlockPool.RowIndex).
            CausalAttention.AttendHeads<PagedKvRows<TKey, TValue>, TKey, TValue>(queries.Slice(from * width, count * width),
                output.Slice(from * width, count * width), count, group, _headDim, position,
                new PagedKvRows<TKey, TValue>(pool, blocks, layer, firstHead + from), _size, scale, scratch[(from * scratchStride)..], scratchStride,
                sinkLogits.IsEmpty ? default : sinkLogits.Slice(from * group, count * group));
        }
        return true;
    }

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
        if (!_rowsOnce) WriteRow<TValue>(value, pool.ValuePlane, pool.ValueSidePlane, at);
    }

    public override void WriteKeyRow(ReadOnlySpan<int> blocks, int layer, int kvHead, int position, ReadOnlySpan<float> row) =>
        WriteRow<TKey>(row, pool.KeyPlane, pool.KeySidePlane, RowAt(blocks, layer, kvHead, position));

    /// <summary>The pool row of one head's <paramref name="slot"/>: block table[slot / BlockSize], row slot % BlockSize.</summary>
    private long RowAt(ReadOnlySpan<int> blocks, int layer, int kvHead, int slot) => pool.RowIndex(blocks[slot / _size], layer, kvHead) + slot % _size;

    /// <summary>
    /// Asks for the first <see cref="KvPrefetch.PagedKeyRows"/> key rows of a head, one run per block: the reads that
    /// start its attention. The tile loop asks for the rest as it goes (<see cref="TileAhead{TKey, TValue}"/>).
    /// </summary>
    public override void Prefetch(ReadOnlySpan<int> blocks, int layer, int kvHead, int end)
    {
        end = Math.Min(Math.Min(end, KvPrefetch.PagedKeyRows), blocks.Length * _size);
        for (int start = 0; start < end; start += _size)
        {
            long row = pool.RowIndex(blocks[start / _size], layer, kvHead);
            TKey.Prefetch(ref pool.KeyPlane[row * pool.KeyRowBytes], ref pool.KeySidePlane[row * pool.KeySideBytes], Math.Min(_size, end - start),
                _headDim);
        }
    }
}
