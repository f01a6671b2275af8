using System.Runtime.CompilerServices;
using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// One sequence's keys and values in a <see cref="KvBlockPool"/>: a block table maps position p to block
/// table[p / BlockSize], slot p % BlockSize. Blocks shared with other sequences (forks, prefix-cache hits) or
/// published to the prefix cache are never written: the first write into one copies it (copy-on-write).
/// </summary>
public sealed unsafe class PagedKvSequence : IKvStore
{
    private readonly KvBlockPool _pool;
    private readonly List<int> _blocks = [];
    private bool _released;

    public int Length { get; private set; }
    public int MaxLength { get; }
    public IReadOnlyList<int> BlockTable => _blocks;
    public KvBlockPool Pool => _pool;

    public PagedKvSequence(KvBlockPool pool, int maxLength)
    {
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        _pool = pool;
        MaxLength = maxLength;
    }

    /// <summary>Blocks needed to hold <paramref name="length"/> positions.</summary>
    public int BlocksFor(int length) => (length + _pool.BlockSize - 1) / _pool.BlockSize;

    /// <summary>Starts the sequence with already-computed blocks (a <see cref="PrefixCache"/> hit): they are retained, not copied.</summary>
    public void AdoptPrefix(IReadOnlyList<int> blocks)
    {
        if (Length != 0 || _blocks.Count != 0) throw new InvalidOperationException("a prefix can only be adopted by an empty sequence");
        foreach (int b in blocks)
        {
            _pool.Retain(b);
            _blocks.Add(b);
        }
        Length = blocks.Count * _pool.BlockSize;
    }

    /// <summary>How many fresh blocks <see cref="Reserve"/> would take to reach <paramref name="length"/>.</summary>
    public int BlocksNeeded(int length)
    {
        int needed = Math.Max(0, BlocksFor(length) - _blocks.Count);
        if (length > Length && Length % _pool.BlockSize != 0 && MustCopy(_blocks[Length / _pool.BlockSize])) needed++;
        return needed;
    }

    private bool MustCopy(int block) => _pool.IsShared(block);

    /// <summary>Makes room for positions [0, length): allocates blocks, and copies a shared partial last block.</summary>
    public void Reserve(int length)
    {
        ObjectDisposedException.ThrowIf(_released, this);
        if (length > MaxLength) throw new InvalidOperationException($"sequence of {length} tokens exceeds its context length {MaxLength}");
        if (length <= Length) return;
        int needed = BlocksNeeded(length);
        if (needed > _pool.AvailableBlocks) throw new OutOfKvBlocksException(needed, _pool.BlockCount);
        int partial = Length / _pool.BlockSize;
        if (Length % _pool.BlockSize != 0 && MustCopy(_blocks[partial]))
        {
            int copy = _pool.Allocate();
            _pool.CopyBlock(_blocks[partial], copy);
            _pool.Release(_blocks[partial]);
            _blocks[partial] = copy;
        }
        while (_blocks.Count < BlocksFor(length)) _blocks.Add(_pool.Allocate());
    }

    public void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (_pool.ElementType == KvElementType.Q8_0) WriteQ8(layer, position, keys, values);
        else if (_pool.ElementType == KvElementType.F16) Write<Half>(layer, position, keys, values);
        else Write<float>(layer, position, keys, values);
    }

    private void WriteQ8(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int block = _blocks[position / _pool.BlockSize], slot = position % _pool.BlockSize, hd = _pool.Config.HeadDim;
        int group = _pool.ScaleGroup;
        sbyte* origin = _pool.Origin<sbyte>();
        float* scales = _pool.ScaleOrigin();
        for (int h = 0; h < _pool.Config.KvHeadCount; h++)
            for (int v = 0; v < 2; v++)
            {
                long at = _pool.RowsOffset(block, layer, v == 1, h) + slot * hd;
                KvQ8.Quantize((v == 1 ? values : keys).Slice(h * hd, hd), new Span<sbyte>(origin + at, hd),
                    new Span<float>(scales + at / group, hd / group), group);
            }
    }

    private void Write<TElement>(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values) where TElement : unmanaged
    {
        int block = _blocks[position / _pool.BlockSize], slot = position % _pool.BlockSize, hd = _pool.Config.HeadDim;
        for (int h = 0; h < _pool.Config.KvHeadCount; h++)
        {
            KvElementTypes.Store(keys.Slice(h * hd, hd), new Span<TElement>(_pool.Rows<TElement>(block, layer, false, h) + slot * hd, hd));
            KvElementTypes.Store(values.Slice(h * hd, hd), new Span<TElement>(_pool.Rows<TElement>(block, layer, true, h) + slot * hd, hd));
        }
    }

    public void Prefetch(int layer, int kvHead, int end)
    {
        // The integers only for Q8_0: its scales are a sixteenth of the bytes, and a line of them serves 32 rows' groups.
        int size = _pool.BlockSize, elementBytes = _pool.ElementType == KvElementType.Q8_0 ? 1 : _pool.ElementType.BytesPerElement();
        nint rowBytes = (nint)_pool.Config.HeadDim * elementBytes, values = (nint)(_pool.ValueRowsDistance * elementBytes);
        byte* origin = _pool.ElementType switch
        {
            KvElementType.F16 => (byte*)_pool.Origin<Half>(),
            KvElementType.Q8_0 => (byte*)_pool.Origin<sbyte>(),
            _ => (byte*)_pool.Origin<float>(),
        };
        end = Math.Min(Math.Min(end, KvPrefetch.Positions), _blocks.Count * size);
        for (int start = 0; start < end; start += size)
        {
            byte* keys = origin + _pool.RowsOffset(_blocks[start / size], layer, false, kvHead) * elementBytes;
            nint bytes = Math.Min(size, end - start) * rowBytes;
            KvPrefetch.Lines(keys, bytes);
            KvPrefetch.Lines(keys + values, bytes);
        }
    }

    public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        var table = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_blocks);
        if (_pool.ElementType == KvElementType.Q8_0)
            CausalAttention.Attend<PagedKvRows<sbyte>, sbyte>(block, new PagedKvRows<sbyte>(_pool, table, layer, kvHead), scale, scratch);
        else if (_pool.ElementType == KvElementType.F16)
            CausalAttention.Attend<PagedKvRows<Half>, Half>(block, new PagedKvRows<Half>(_pool, table, layer, kvHead), scale, scratch);
        else
            CausalAttention.Attend<PagedKvRows<float>, float>(block, new PagedKvRows<float>(_pool, table, layer, kvHead), scale, scratch);
    }

    public void Commit(int length)
    {
        if (length < Length || length > _blocks.Count * _pool.BlockSize)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"must be within [{Length}, {_blocks.Count * _pool.BlockSize}]");
        Length = length;
    }

    /// <summary>A new sequence sharing every block of this one (parallel sampling): nothing is copied until written.</summary>
    public PagedKvSequence Fork()
    {
        ObjectDisposedException.ThrowIf(_released, this);
        var child = new PagedKvSequence(_pool, MaxLength);
        foreach (int b in _blocks)
        {
            _pool.Retain(b);
            child._blocks.Add(b);
        }
        child.Length = Length;
        return child;
    }

    /// <summary>Rewinds to <paramref name="length"/> positions, releasing the blocks past it.</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), length, $"the sequence holds {Length} positions");
        int keep = BlocksFor(length);
        for (int i = _blocks.Count - 1; i >= keep; i--)
        {
            _pool.Release(_blocks[i]);
            _blocks.RemoveAt(i);
        }
        Length = length;
    }

    /// <summary>Gives every block back to the pool (published ones stay cached for later prefix hits).</summary>
    public void Release()
    {
        if (_released) return;
        // Tail first: cached blocks are evicted in the order they were let go, and a prefix that loses its head
        // loses every block after it (a lookup walks the chain from the start), while losing the tail costs only it.
        for (int i = _blocks.Count - 1; i >= 0; i--) _pool.Release(_blocks[i]);
        _blocks.Clear();
        Length = 0;
        _released = true;
    }
}

/// <summary>
/// Key/value rows of one layer and KV head found through a block table. Offsets count from the pool's storage;
/// a block keeps a layer's V rows a fixed distance after its K rows, so one offset serves both.
/// </summary>
public readonly unsafe ref struct PagedKvRows<TElement>(KvBlockPool pool, ReadOnlySpan<int> blocks, int layer, int kvHead)
    : IKvRows<TElement> where TElement : unmanaged
{
    private readonly KvBlockPool _pool = pool;
    private readonly ReadOnlySpan<int> _blocks = blocks;
    private readonly int _layer = layer, _head = kvHead, _size = pool.BlockSize, _hd = pool.Config.HeadDim;

    public ref readonly TElement KeyOrigin => ref *_pool.Origin<TElement>();
    public ref readonly TElement ValueOrigin => ref *(_pool.Origin<TElement>() + _pool.ValueRowsDistance);
    public ref readonly float KeyScaleOrigin => ref typeof(TElement) == typeof(sbyte) ? ref *_pool.ScaleOrigin() : ref Unsafe.NullRef<float>();
    public ref readonly float ValueScaleOrigin => ref typeof(TElement) == typeof(sbyte)
        ? ref *(_pool.ScaleOrigin() + _pool.ValueRowsDistance / _pool.ScaleGroup) : ref Unsafe.NullRef<float>();
    public int ScaleGroup => typeof(TElement) == typeof(sbyte) ? _pool.ScaleGroup : 0;

    public void RowOffsets(int start, scoped Span<nint> offsets)
    {
        // One table lookup per block the positions cross, not per position.
        int position = start, i = 0;
        while (i < offsets.Length)
        {
            int slot = position % _size, run = Math.Min(_size - slot, offsets.Length - i);
            nint at = (nint)_pool.RowsOffset(_blocks[position / _size], _layer, false, _head) + slot * _hd;
            for (int end = i + run; i < end; i++, at += _hd) offsets[i] = at;
            position += run;
        }
    }

    public static bool ShortRuns => true;
}
