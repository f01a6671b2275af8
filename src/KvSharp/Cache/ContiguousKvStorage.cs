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
    public abstract void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);
    public abstract void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch);
    /// <summary><see cref="Attend"/> over the positions a window policy keeps (<see cref="PolicyAttention"/>).</summary>
    public abstract void AttendKept(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, KeptSlots slots, SinkKeys? sinks);
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
/// side data, one array of the rows' side data at p x SideBytes.
/// </summary>
internal sealed class ContiguousKvStorage<TKv> : ContiguousKvStorage where TKv : struct, IKvElement<TKv>
{
    private readonly int _kvHeads, _headDim, _rowBytes, _sideBytes;
    // [(layer x 2 + K|V) x kv_heads + head]
    private readonly byte[][] _rows, _side;

    public override int Capacity => _capacity;
    private int _capacity;

    public ContiguousKvStorage(ModelConfig config, int capacity)
    {
        _kvHeads = config.KvHeadCount;
        _headDim = config.HeadDim;
        _rowBytes = TKv.RowBytes(_headDim);
        _sideBytes = TKv.SideBytes(_headDim);
        _capacity = capacity;
        _rows = new byte[2 * config.LayerCount * _kvHeads][];
        _side = new byte[_rows.Length][];
        for (int i = 0; i < _rows.Length; i++)
        {
            _rows[i] = new byte[(long)capacity * _rowBytes];
            _side[i] = new byte[(long)capacity * _sideBytes];
        }
    }

    private int Index(int layer, int kvHead, bool value) => (layer * 2 + (value ? 1 : 0)) * _kvHeads + kvHead;

    public override Span<byte> Rows(int layer, int kvHead, bool value) => _rows[Index(layer, kvHead, value)];

    public override Span<byte> Side(int layer, int kvHead, bool value) => _side[Index(layer, kvHead, value)];

    /// <summary>Moves to a larger capacity, keeping each head's first <paramref name="used"/> rows.</summary>
    public override void Grow(int capacity, int used)
    {
        for (int i = 0; i < _rows.Length; i++)
        {
            _rows[i] = Grow(_rows[i], (long)capacity * _rowBytes, (long)used * _rowBytes);
            _side[i] = Grow(_side[i], (long)capacity * _sideBytes, (long)used * _sideBytes);
        }
        _capacity = capacity;
    }

    private static byte[] Grow(byte[] old, long length, long used)
    {
        var grown = new byte[length];
        Array.Copy(old, grown, used);
        return grown;
    }

    public override void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int hd = _headDim;
        for (int h = 0; h < _kvHeads; h++)
        {
            WriteRow(Index(layer, h, false), position, keys.Slice(h * hd, hd));
            WriteRow(Index(layer, h, true), position, values.Slice(h * hd, hd));
        }
    }

    private void WriteRow(int index, int position, ReadOnlySpan<float> row) =>
        TKv.Write(row, _rows[index].AsSpan(position * _rowBytes, _rowBytes), _side[index].AsSpan(position * _sideBytes, _sideBytes));

    public override void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        CausalAttention.Attend<ContiguousKvRows<TKv>, TKv>(block,
            new ContiguousKvRows<TKv>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim), scale, scratch);
    }

    public override void AttendKept(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch, KeptSlots slots, SinkKeys? sinks)
    {
        int keys = Index(layer, kvHead, false), values = Index(layer, kvHead, true);
        PolicyAttention.Attend<ContiguousKvRows<TKv>, TKv>(block,
            new ContiguousKvRows<TKv>(_rows[keys], _rows[values], _side[keys], _side[values], _headDim), slots, sinks, layer, kvHead, scale, scratch);
    }

    /// <summary>Asks for one head's first <paramref name="positions"/> key and value rows (<see cref="KvPrefetch"/>).</summary>
    public override void Prefetch(int layer, int kvHead, int positions)
    {
        positions = Math.Min(positions, _capacity);
        if (positions <= 0) return;
        PrefetchRows(Index(layer, kvHead, false), positions);
        PrefetchRows(Index(layer, kvHead, true), positions);
    }

    private void PrefetchRows(int index, int positions) =>
        TKv.Prefetch(ref MemoryMarshal.GetArrayDataReference(_rows[index]), ref MemoryMarshal.GetArrayDataReference(_side[index]), positions, _headDim);

    public override void Read(int layer, int kvHead, bool value, int position, Span<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length < _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        int i = Index(layer, kvHead, value);
        TKv.Read(ref _rows[i][position * _rowBytes], ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_side[i]), position * _sideBytes),
            _headDim, ref MemoryMarshal.GetReference(row));
    }

    /// <summary>Stores one head's key or value row at <paramref name="position"/> (rounded or quantized as the type stores it).</summary>
    public override void WriteRow(int layer, int kvHead, bool value, int position, ReadOnlySpan<float> row)
    {
        if ((uint)position >= (uint)_capacity) throw new ArgumentOutOfRangeException(nameof(position), position, $"the cache holds {_capacity} positions");
        if (row.Length != _headDim) throw new ArgumentException($"a row is {_headDim} floats, got {row.Length}", nameof(row));
        WriteRow(Index(layer, kvHead, value), position, row);
    }

    /// <summary>
    /// Copies rows [from, from + count) to [to, to + count) in every layer, K and V and head, stored bytes and side data
    /// as they are (the ranges may overlap).
    /// </summary>
    public override void Move(int from, int to, int count)
    {
        for (int i = 0; i < _rows.Length; i++)
        {
            _rows[i].AsSpan(from * _rowBytes, count * _rowBytes).CopyTo(_rows[i].AsSpan(to * _rowBytes));
            _side[i].AsSpan(from * _sideBytes, count * _sideBytes).CopyTo(_side[i].AsSpan(to * _sideBytes));
        }
    }

    /// <summary>Zeroes rows [from, to) of every layer and head.</summary>
    public override void Clear(int from, int to)
    {
        for (int i = 0; i < _rows.Length; i++)
        {
            _rows[i].AsSpan(from * _rowBytes, (to - from) * _rowBytes).Clear();
            _side[i].AsSpan(from * _sideBytes, (to - from) * _sideBytes).Clear();
        }
    }
}
