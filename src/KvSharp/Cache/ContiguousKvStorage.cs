using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KvSharp.Attention;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>
/// The storage behind a <see cref="KvCache"/>, created once for its element type (<see cref="KvElementFormat"/>):
/// every operation runs the type's strategy with no branch on the type.
/// </summary>
internal abstract class ContiguousKvStorage
{
    public abstract int Capacity { get; }
    /// <summary>
    /// Whether each row is stored once, the values a view of the keys (<see cref="KvElementFormat.StoresRowsOnce"/>):
    /// a value's rows, side data and reads are its key's, and writing one writes the row.
    /// </summary>
    public abstract bool RowsOnce { get; }
    public abstract void Grow(int capacity, int used);
    /// <summary>The local layers' ring (<see cref="LocalLayerRing"/>) becomes <paramref name="rows"/> rows long, keeping positions [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public abstract void ResizeRing(int rows, int from, int to);
    /// <summary>Rows [<paramref name="from"/>, <paramref name="length"/>) are about to be written (in parallel, in any order).</summary>
    public abstract void Prepare(int from, int length);
    public abstract void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);
    public abstract void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch);
    /// <summary><see cref="Attend"/> over the positions a window policy keeps (<see cref="PolicyAttention"/>).</summary>
    public abstract void AttendKept(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, KeptSlots slots, SinkKeys? sinks);
    /// <summary><see cref="Attend"/> under a score-based policy (<see cref="ScoredAttention"/>), over the rows it holds.</summary>
    public abstract void AttendScored(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, ScoredHeads heads);
    /// <summary>Asks for the first rows a decode query at <paramref name="end"/> - 1 reads (<see cref="KvPrefetch"/>).</summary>
    public abstract void Prefetch(int layer, int kvHead, int end);
    public abstract void Read(int layer, int kvHead, bool value, int position, Span<float> row);
    public abstract void WriteRow(int layer, int kvHead, bool value, int position, ReadOnlySpan<float> row);
    public abstract void Move(int from, int to, int count);
    public abstract Span<byte> Rows(int layer, int kvHead, bool value);
    public abstract Span<byte> Side(int layer, int kvHead, bool value);
    public abstract void Clear(int from, int to);
}

/// <summary>
/// Per layer, K or V and KV head, one array of rows [position] (row p at p x RowBytes, so one head's keys for
/// consecutive positions are contiguous, which is what the attention kernel streams through), and, for a type with
/// side data, one array of the rows' side data at p x SideBytes. Keys are stored as <typeparamref name="TKey"/>,
/// values as <typeparamref name="TValue"/>, each side with its own row and side sizes. A layer with a sliding window of
/// its own keeps a ring instead (<see cref="LocalLayerRing"/>): position p in row p mod its rows. Where the model's
/// values are its keys and the format stores them alike (<see cref="RowsOnce"/>: latent attention), a layer has key
/// arrays only, and every value index names its key's arrays.
/// </summary>
internal sealed class ContiguousKvStorage<TKey, TValue> : ContiguousKvStorage
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly int _kvHeads, _headDim;
    // [K|V]
    private readonly int[] _rowBytes, _sideBytes, _sideHeaders;
    // [(layer x 2 + K|V) x kv_heads + head]; the V entries stay null where the row is stored once (Index never names them).
    private readonly byte[][] _rows, _side;
    private readonly bool _rowsOnce;
    // Types whose rows do not stand alone (KIVI): each array's pending rows, the length reserved for the step being
    // written (from its first position), and one lock under which a step's first attention settles them. Unused (and
    // compiled out) otherwise.
    private readonly float[]?[] _pending;
    private int _stepFrom, _reserved;
    private readonly Lock _settle = new();
    // The model's rotary angles per position, for a key type that stores keys before RoPE (KIVI); null otherwise.
    private readonly RotaryTable? _keyRotation;
    // The local layers' ring; null where every layer keeps every position.
    private readonly LocalLayerRing? _ring;

    private static bool RowsStandAlone => TKey.RowsStandAlone && TValue.RowsStandAlone;

    public override int Capacity => _capacity;
    private int _capacity;

    public override bool RowsOnce => _rowsOnce;

    /// <param name="rope">The model's rotary embedding (<c>LlmModel.Rope</c>), which KIVI keys are stored before; null: the
    /// config's RoPE without per-frequency factors (reads are right either way, see <see cref="KvKivi{TBits, TAxis}"/>).</param>
    /// <param name="ring">The local layers' ring, or null: every layer keeps every position.</param>
    public ContiguousKvStorage(ModelConfig config, int capacity, RotaryEmbedding? rope, LocalLayerRing? ring)
    {
        _ring = ring;
        _kvHeads = config.KvHeadCount;
        _headDim = config.HeadDim;
        _rowBytes = [TKey.RowBytes(_headDim), TValue.RowBytes(_headDim)];
        _sideBytes = [TKey.SideBytes(_headDim), TValue.SideBytes(_headDim)];
        _sideHeaders = [TKey.SideHeaderBytes(_headDim), TValue.SideHeaderBytes(_headDim)];
        _capacity = capacity;
        _rowsOnce = KvElementFormat.Of<TKey, TValue>().StoresRowsOnce(config);
        _rows = new byte[2 * config.LayerCount * _kvHeads][];
        _side = new byte[_rows.Length][];
        _pending = new float[]?[_rows.Length];
        if (!TKey.RowsStandAlone)
        {
            rope ??= new RotaryEmbedding(config, null);
            _keyRotation = new RotaryTable(rope.Dims, config.RopeStyle == RopeStyle.NeoX, rope.Angles);
        }
        for (int i = 0; i < _rows.Length; i++)
        {
            if (!Owns(i)) continue;
            _rows[i] = new byte[(long)RowsOf(i, capacity) * RowBytes(i)];
            _side[i] = new byte[SideHeader(i) + (long)RowsOf(i, capacity) * SideBytes(i)];
        }
    }

    /// <summary>Whether <paramref name="layer"/> keeps a ring.</summary>
    private bool RingLayer(int layer) => _ring != null && _ring.IsLocal(layer);

    private bool InRing(int index) => RingLayer(index / (2 * _kvHeads));

    /// <summary>Rows the array at <paramref name="index"/> has at <paramref name="capacity"/>: a ring's at most its length.</summary>
    private int RowsOf(int index, int capacity) => InRing(index) ? Math.Min(capacity, _ring!.Rows) : capacity;

    /// <summary>The row of <paramref name="layer"/> that holds <paramref name="position"/>.</summary>
    private int Slot(int layer, int position) => RingLayer(layer) ? _ring!.Slot(position) : position;

    /// <summary>The arrays of one layer's K or V of one head: a value's are its key's where the row is stored once.</summary>
    private int Index(int layer, int kvHead, bool value) => (layer * 2 + (value && !_rowsOnce ? 1 : 0)) * _kvHeads + kvHead;

    /// <summary>Whether the arrays at <paramref name="index"/> are allocated: every one, or only the keys' where the row is stored once.</summary>
    private bool Owns(int index) => !_rowsOnce || index / _kvHeads % 2 == 0;

    /// <summary>Row bytes of the array at <paramref name="index"/>: the key type's or the value type's.</summary>
    private int RowBytes(int index) => _rowBytes[index / _kvHeads % 2];

    private int SideBytes(int index) => _sideBytes[index / _kvHeads % 2];

    private int SideHeader(int index) => _sideHeaders[index / _kvHeads % 2];

    public override Span<byte> Rows(int layer, int kvHead, bool value) => _rows[Index(layer, kvHead, value)];

    public override Span<byte> Side(int layer, int kvHead, bool value) => _side[Index(layer, kvHead, value)];

    /// <summary>Moves to a larger capacity, keeping each head's first <paramref name="used"/> rows.</summary>
    public override void Grow(int capacity, int used)
    {
        for (int i = 0; i < _rows.Length; i++)
        {
            if (!Owns(i)) continue;
            // A ring already as long as it will be stays; a shorter one holds positions at their own rows so far.
            int rows = RowsOf(i, capacity), kept = Math.Min(used, RowsOf(i, _capacity));
            if (rows == RowsOf(i, _capacity)) continue;
            _rows[i] = Grow(_rows[i], (long)rows * RowBytes(i), (long)kept * RowBytes(i));
            _side[i] = Grow(_side[i], SideHeader(i) + (long)rows * SideBytes(i), SideHeader(i) + (long)kept * SideBytes(i));
        }
        _capacity = capacity;
    }

    public override void ResizeRing(int rows, int from, int to)
    {
        var ring = _ring ?? throw new InvalidOperationException("this cache keeps no ring");
        for (int i = 0; i < _rows.Length; i++)
        {
            if (!InRing(i) || !Owns(i)) continue;
            int rowBytes = RowBytes(i), sideBytes = SideBytes(i), header = SideHeader(i), count = Math.Min(_capacity, rows);
            var newRows = new byte[(long)count * rowBytes];
            var newSide = new byte[header + (long)count * sideBytes];
            _side[i].AsSpan(0, header).CopyTo(newSide);
            for (int p = from; p < to; p++)
            {
                int old = ring.Slot(p), now = p % rows;
                _rows[i].AsSpan(old * rowBytes, rowBytes).CopyTo(newRows.AsSpan(now * rowBytes));
                _side[i].AsSpan(header + old * sideBytes, sideBytes).CopyTo(newSide.AsSpan(header + now * sideBytes));
            }
            _rows[i] = newRows;
            _side[i] = newSide;
        }
    }

    private static byte[] Grow(byte[] old, long length, long used)
    {
        var grown = new byte[length];
        Array.Copy(old, grown, used);
        return grown;
    }

    public override void Prepare(int from, int length)
    {
        if (RowsStandAlone) return;
        _stepFrom = from;
        _reserved = length;
        for (int i = 0; i < _rows.Length; i++)
        {
            if (i / _kvHeads % 2 == 1) TValue.Prepare(_side[i], length, _headDim, ref _pending[i], null);
            else TKey.Prepare(_side[i], length, _headDim, ref _pending[i], _keyRotation);
        }
    }

    /// <summary>Quantizes the complete groups of one head's rows written so far (KIVI), once per step: every attention of the step calls it first.</summary>
    private void Settle(int keys, int values)
    {
        lock (_settle)
        {
            TKey.Settle(_rows[keys], _side[keys], _stepFrom, _reserved, _headDim);
            TValue.Settle(_rows[values], _side[values], _stepFrom, _reserved, _headDim);
        }
    }

    public override void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int hd = _headDim, slot = Slot(layer, position);
        for (int h = 0; h < _kvHeads; h++)
        {
            WriteRow<TKey>(Index(layer, h, false), slot, keys.Slice(h * hd, hd));
            // Where the row is stored once the values are the keys just written (the forward pass gives the same row).
            if (!_rowsOnce) WriteRow<TValue>(Index(layer, h, true), slot, values.Slice(h * hd, hd));
        }
    }

    private void WriteRow<TKv>(int index, int position, ReadOnlySpan<float> row) where TKv : struct, IKvElement<TKv> =>
        TKv.WriteRow(row, _rows[index], _side[index], position, _headDim);

    public override void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        if (!RowsStandAlone) Settle(keys, values);
        var rows = new ContiguousKvRows<TKey, TValue>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim);
        if (RingLayer(layer))
        {
            var ring = _ring!;
            // Reading a position the ring no longer holds would read a newer one's row: refuse it.
            if (ring.FirstRead(block.FirstPosition) < ring.Oldest)
                throw new InvalidOperationException($"layer {layer} reads from position {ring.FirstRead(block.FirstPosition)}, " +
                    $"but its ring of {ring.Rows} rows holds positions from {ring.Oldest} only");
            // The ring as a window policy's ring without sinks read from position 0: position p in row p mod Rows.
            CausalAttention.Attend<KeptKvRows<ContiguousKvRows<TKey, TValue>, TKey, TValue>, TKey, TValue>(block,
                new KeptKvRows<ContiguousKvRows<TKey, TValue>, TKey, TValue>(rows, new KeptSlots(0, ring.Window, ring.Rows), 0), scale, scratch);
        }
        else CausalAttention.Attend<ContiguousKvRows<TKey, TValue>, TKey, TValue>(block, rows, scale, scratch);
    }

    public override void AttendKept(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, KeptSlots slots, SinkKeys? sinks)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        PolicyAttention.Attend<ContiguousKvRows<TKey, TValue>, TKey, TValue>(block,
            new ContiguousKvRows<TKey, TValue>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim), slots, sinks, layer, kvHead, scale, scratch);
    }

    public override void AttendScored(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, ScoredHeads heads)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        ScoredAttention.Attend<ContiguousKvRows<TKey, TValue>, TKey, TValue>(block,
            new ContiguousKvRows<TKey, TValue>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim), heads, layer, kvHead, scale, scratch);
    }

    /// <summary>
    /// Asks for the first <see cref="KvPrefetch.Positions"/> key and value rows a query at <paramref name="end"/> - 1
    /// reads: the head's first rows, or in a local layer its window's, up to where the ring wraps.
    /// </summary>
    public override void Prefetch(int layer, int kvHead, int end)
    {
        end = Math.Min(end, _capacity);
        int first = RingLayer(layer) && end > 0 ? _ring!.FirstRead(end - 1) : 0, slot = Slot(layer, first);
        int positions = Math.Min(Math.Min(end - first, KvPrefetch.Positions), RowsOf(Index(layer, kvHead, false), _capacity) - slot);
        if (positions <= 0) return;
        PrefetchRows<TKey>(Index(layer, kvHead, false), slot, positions);
        if (!_rowsOnce) PrefetchRows<TValue>(Index(layer, kvHead, true), slot, positions);
    }

    private void PrefetchRows<TKv>(int index, int slot, int positions) where TKv : struct, IKvElement<TKv> =>
        TKv.Prefetch(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_rows[index]), (nint)slot * TKv.RowBytes(_headDim)),
            ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_side[index]), TKv.SideHeaderBytes(_headDim) + (nint)slot * TKv.SideBytes(_headDim)),
            positions, _headDim);

    public override void Read(int layer, int kvHead, bool value, int position, Span<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length < _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        if (RingLayer(layer) && position < _ring!.Oldest)
            throw new ArgumentOutOfRangeException(nameof(position), position,
                $"layer {layer} keeps a ring of its sliding window and holds positions from {_ring.Oldest} only");
        int i = Index(layer, kvHead, value), slot = Slot(layer, position);
        if (!RowsStandAlone) Settle(Index(layer, kvHead, false), Index(layer, kvHead, true));
        if (value) ReadRow<TValue>(i, slot, row);
        else ReadRow<TKey>(i, slot, row);
    }

    private void ReadRow<TKv>(int index, int position, Span<float> row) where TKv : struct, IKvElement<TKv> =>
        TKv.ReadRow(new KvPlanes(ref MemoryMarshal.GetArrayDataReference(_rows[index]), ref MemoryMarshal.GetArrayDataReference(_side[index])),
            position, _headDim, ref MemoryMarshal.GetReference(row));

    /// <summary>Stores one head's key or value row at <paramref name="position"/> (rounded or quantized as the type stores it).</summary>
    public override void WriteRow(int layer, int kvHead, bool value, int position, ReadOnlySpan<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length != _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        int slot = Slot(layer, position);
        if (value) WriteRow<TValue>(Index(layer, kvHead, true), slot, row);
        else WriteRow<TKey>(Index(layer, kvHead, false), slot, row);
    }

    /// <summary>
    /// Copies rows [from, from + count) to [to, to + count) in every layer, K and V and head, stored bytes and side data
    /// as they are (the ranges may overlap).
    /// </summary>
    public override void Move(int from, int to, int count)
    {
        if (!TKey.RowsStandAlone || !TValue.RowsStandAlone)
            throw new NotSupportedException($"rows of {KvElementFormat.Of<TKey, TValue>().Name} are quantized in groups along positions and cannot be moved");
        if (_ring != null) throw new NotSupportedException("the rows of layers kept as a ring of their window cannot be moved");
        for (int i = 0; i < _rows.Length; i++)
        {
            // A row stored once moves once: moving an overlapping range twice would move it twice as far.
            if (!Owns(i)) continue;
            int rowBytes = RowBytes(i), sideBytes = SideBytes(i);
            _rows[i].AsSpan(from * rowBytes, count * rowBytes).CopyTo(_rows[i].AsSpan(to * rowBytes));
            _side[i].AsSpan(SideHeader(i) + from * sideBytes, count * sideBytes).CopyTo(_side[i].AsSpan(SideHeader(i) + to * sideBytes));
        }
    }

    /// <summary>Zeroes rows [from, to) of every layer and head.</summary>
    public override void Clear(int from, int to)
    {
        // A later settle (a read before the next step) must not quantize the forgotten rows' groups again.
        _reserved = Math.Min(_reserved, from);
        _stepFrom = Math.Min(_stepFrom, from);
        for (int i = 0; i < _rows.Length; i++)
        {
            if (!Owns(i)) continue;
            if (!InRing(i)) ClearRows(i, from, to);
            else if (to - from >= RowsOf(i, _capacity)) ClearRows(i, 0, RowsOf(i, _capacity));
            else if (to > from)
            {
                // The positions' rows: one run, or two where the ring wraps.
                int first = _ring!.Slot(from), last = _ring.Slot(to - 1) + 1;
                if (first < last) ClearRows(i, first, last);
                else
                {
                    ClearRows(i, first, RowsOf(i, _capacity));
                    ClearRows(i, 0, last);
                }
            }
        }
    }

    private void ClearRows(int index, int from, int to)
    {
        if (index / _kvHeads % 2 == 1) TValue.ClearRows(_rows[index], _side[index], from, to, _headDim);
        else TKey.ClearRows(_rows[index], _side[index], from, to, _headDim);
    }
}
