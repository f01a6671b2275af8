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
    public abstract void Grow(int capacity, int used);
    /// <summary>Rows [<paramref name="from"/>, <paramref name="length"/>) are about to be written (in parallel, in any order).</summary>
    public abstract void Prepare(int from, int length);
    public abstract void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);
    public abstract void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch);
    /// <summary><see cref="Attend"/> over the positions a window policy keeps (<see cref="PolicyAttention"/>).</summary>
    public abstract void AttendKept(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, KeptSlots slots, SinkKeys? sinks);
    /// <summary><see cref="Attend"/> under a score-based policy (<see cref="ScoredAttention"/>), over the rows it holds.</summary>
    public abstract void AttendScored(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, ScoredHeads heads);
    public abstract void Prefetch(int layer, int kvHead, int positions);
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
/// values as <typeparamref name="TValue"/>, each side with its own row and side sizes.
/// </summary>
internal sealed class ContiguousKvStorage<TKey, TValue> : ContiguousKvStorage
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    private readonly int _kvHeads, _headDim;
    // [K|V]
    private readonly int[] _rowBytes, _sideBytes, _sideHeaders;
    // [(layer x 2 + K|V) x kv_heads + head]
    private readonly byte[][] _rows, _side;
    // Types whose rows do not stand alone (KIVI): each array's pending rows, the length reserved for the step being
    // written (from its first position), and one lock under which a step's first attention settles them. Unused (and
    // compiled out) otherwise.
    private readonly float[]?[] _pending;
    private int _stepFrom, _reserved;
    private readonly Lock _settle = new();
    // The model's rotary angles per position, for a key type that stores keys before RoPE (KIVI); null otherwise.
    private readonly RotaryTable? _keyRotation;

    private static bool RowsStandAlone => TKey.RowsStandAlone && TValue.RowsStandAlone;

    public override int Capacity => _capacity;
    private int _capacity;

    /// <param name="rope">The model's rotary embedding (<c>LlmModel.Rope</c>), which KIVI keys are stored before; null: the
    /// config's RoPE without per-frequency factors (reads are right either way, see <see cref="KvKivi{TBits, TAxis}"/>).</param>
    public ContiguousKvStorage(ModelConfig config, int capacity, RotaryEmbedding? rope)
    {
        _kvHeads = config.KvHeadCount;
        _headDim = config.HeadDim;
        _rowBytes = [TKey.RowBytes(_headDim), TValue.RowBytes(_headDim)];
        _sideBytes = [TKey.SideBytes(_headDim), TValue.SideBytes(_headDim)];
        _sideHeaders = [TKey.SideHeaderBytes(_headDim), TValue.SideHeaderBytes(_headDim)];
        _capacity = capacity;
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
            _rows[i] = new byte[(long)capacity * RowBytes(i)];
            _side[i] = new byte[SideHeader(i) + (long)capacity * SideBytes(i)];
        }
    }

    private int Index(int layer, int kvHead, bool value) => (layer * 2 + (value ? 1 : 0)) * _kvHeads + kvHead;

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
            _rows[i] = Grow(_rows[i], (long)capacity * RowBytes(i), (long)used * RowBytes(i));
            _side[i] = Grow(_side[i], SideHeader(i) + (long)capacity * SideBytes(i), SideHeader(i) + (long)used * SideBytes(i));
        }
        _capacity = capacity;
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
        int hd = _headDim;
        for (int h = 0; h < _kvHeads; h++)
        {
            WriteRow<TKey>(Index(layer, h, false), position, keys.Slice(h * hd, hd));
            WriteRow<TValue>(Index(layer, h, true), position, values.Slice(h * hd, hd));
        }
    }

    private void WriteRow<TKv>(int index, int position, ReadOnlySpan<float> row) where TKv : struct, IKvElement<TKv> =>
        TKv.WriteRow(row, _rows[index], _side[index], position, _headDim);

    public override void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        if (!RowsStandAlone) Settle(keys, values);
        CausalAttention.Attend<ContiguousKvRows<TKey, TValue>, TKey, TValue>(block,
            new ContiguousKvRows<TKey, TValue>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim), scale, scratch);
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

    /// <summary>Asks for one head's first <paramref name="positions"/> key and value rows (<see cref="KvPrefetch"/>).</summary>
    public override void Prefetch(int layer, int kvHead, int positions)
    {
        positions = Math.Min(positions, _capacity);
        if (positions <= 0) return;
        PrefetchRows<TKey>(Index(layer, kvHead, false), positions);
        PrefetchRows<TValue>(Index(layer, kvHead, true), positions);
    }

    private void PrefetchRows<TKv>(int index, int positions) where TKv : struct, IKvElement<TKv> =>
        TKv.Prefetch(ref MemoryMarshal.GetArrayDataReference(_rows[index]), ref MemoryMarshal.GetArrayDataReference(_side[index]), positions, _headDim);

    public override void Read(int layer, int kvHead, bool value, int position, Span<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length < _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        int i = Index(layer, kvHead, value);
        if (!RowsStandAlone) Settle(Index(layer, kvHead, false), Index(layer, kvHead, true));
        if (value) ReadRow<TValue>(i, position, row);
        else ReadRow<TKey>(i, position, row);
    }

    private void ReadRow<TKv>(int index, int position, Span<float> row) where TKv : struct, IKvElement<TKv> =>
        TKv.ReadRow(new KvPlanes(ref MemoryMarshal.GetArrayDataReference(_rows[index]), ref MemoryMarshal.GetArrayDataReference(_side[index])),
            position, _headDim, ref MemoryMarshal.GetReference(row));

    /// <summary>Stores one head's key or value row at <paramref name="position"/> (rounded or quantized as the type stores it).</summary>
    public override void WriteRow(int layer, int kvHead, bool value, int position, ReadOnlySpan<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length != _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        if (value) WriteRow<TValue>(Index(layer, kvHead, true), position, row);
        else WriteRow<TKey>(Index(layer, kvHead, false), position, row);
    }

    /// <summary>
    /// Copies rows [from, from + count) to [to, to + count) in every layer, K and V and head, stored bytes and side data
    /// as they are (the ranges may overlap).
    /// </summary>
    public override void Move(int from, int to, int count)
    {
        if (!TKey.RowsStandAlone || !TValue.RowsStandAlone)
            throw new NotSupportedException($"rows of {KvElementFormat.Of<TKey, TValue>().Name} are quantized in groups along positions and cannot be moved");
        for (int i = 0; i < _rows.Length; i++)
        {
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
            if (i / _kvHeads % 2 == 1) TValue.ClearRows(_rows[i], _side[i], from, to, _headDim);
            else TKey.ClearRows(_rows[i], _side[i], from, to, _headDim);
        }
    }
}
