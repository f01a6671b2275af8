using System.Runtime.InteropServices;
using KvSharp.Models;

namespace KvSharp.Cache.Paged;

/// <summary>
/// A fixed KV memory budget divided into blocks of <see cref="BlockSize"/> positions. Each block holds K and V for
/// every layer and KV head of its positions, laid out [layer][K|V][kv_head][slot][head_dim] so one head's rows in a
/// block are contiguous, each element stored as <see cref="ElementType"/> (F32, or F16 for twice the positions in the
/// same budget). Blocks are reference-counted (sequences that share a prefix share its blocks). The pool keeps
/// storage, refcounts and the free list; which blocks outlive their last holder is its prefix cache's business
/// (<see cref="PrefixCache"/>, attached through <see cref="ICachedBlocks"/>), which it asks for a block back when
/// none is free. Not thread-safe: the engine's scheduler owns it.
/// </summary>
public sealed unsafe class KvBlockPool : IDisposable
{
    private byte* _storage;
    private readonly int[] _refCounts;
    private readonly Stack<int> _free = new();
    private ICachedBlocks? _cache;

    public ModelConfig Config { get; }
    public int BlockSize { get; }
    public int BlockCount { get; }
    /// <summary>How each key and value element is stored (F16 halves the bytes per block).</summary>
    public KvElementType ElementType { get; }
    /// <summary>Elements (keys and values of every layer and head) in one block.</summary>
    public long BlockElements { get; }
    public long BytesPerBlock => ElementType.Bytes(BlockElements, Config.HeadDim);
    public long TotalBytes => BytesPerBlock * BlockCount;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks { get; private set; }
    /// <summary>Blocks nobody holds that still cache a published prefix (reusable, evictable).</summary>
    public int CachedBlocks => _cache?.Count ?? 0;
    /// <summary>Blocks that can be handed out now (free or evictable).</summary>
    public int AvailableBlocks => BlockCount - UsedBlocks;

    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementType elementType = KvElementType.F32)
    {
        if (!Enum.IsDefined(elementType)) throw new ArgumentOutOfRangeException(nameof(elementType), elementType, "unknown KV element type");
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        if (blockCount <= 0) throw new ArgumentOutOfRangeException(nameof(blockCount), blockCount, "the pool needs at least one block");
        Config = config;
        BlockSize = blockSize;
        BlockCount = blockCount;
        ElementType = elementType;
        BlockElements = 2L * config.LayerCount * config.KvHeadCount * blockSize * config.HeadDim;
        // One allocation; a Q8_0 pool keeps its scales in a plane after the integers: the scale of the element at
        // offset o (from the origin) at o / group, so an offset finds both.
        long bytes = elementType.Bytes(BlockElements * blockCount, config.HeadDim);
        _storage = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        NativeMemory.Clear(_storage, (nuint)bytes);
        _refCounts = new int[blockCount];
        for (int b = blockCount - 1; b >= 0; b--) _free.Push(b);
    }

    /// <summary>A pool sized by a byte budget (rounded down to whole blocks).</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, KvElementType elementType = KvElementType.F32)
    {
        long perBlock = elementType.Bytes(2L * config.LayerCount * config.KvHeadCount * blockSize * config.HeadDim, config.HeadDim);
        long blocks = budgetBytes / perBlock;
        if (blocks < 1)
            throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, $"the budget cannot hold one block of {perBlock} bytes");
        return new KvBlockPool(config, blockSize, (int)Math.Min(blocks, int.MaxValue), elementType);
    }

    public int RefCount(int block) => _refCounts[block];

    /// <summary>
    /// Whether others see this block's contents: more than one holder, or published to the prefix cache. A writer
    /// copies such a block first (copy-on-write), so a block being written is never shared.
    /// </summary>
    public bool IsShared(int block) => _refCounts[block] > 1 || _cache?.IsPublished(block) == true;

    /// <summary>Lets <paramref name="cache"/> keep blocks past their last holder (one prefix cache per pool).</summary>
    internal void Attach(ICachedBlocks cache)
    {
        if (_cache != null) throw new InvalidOperationException("this pool already has a prefix cache");
        _cache = cache;
    }

    /// <summary>Takes a fresh block (refcount 1): a free one, else one the prefix cache gives up (least recently used).</summary>
    public bool TryAllocate(out int block)
    {
        if (_free.Count > 0) block = _free.Pop();
        else if (_cache == null || !_cache.TryEvict(out block))
        {
            block = -1;
            return false;
        }
        _refCounts[block] = 1;
        UsedBlocks++;
        return true;
    }

    public int Allocate() => TryAllocate(out int b) ? b : throw new OutOfKvBlocksException(1, BlockCount);

    /// <summary>Another holder of <paramref name="block"/> (a fork, or a prefix-cache hit).</summary>
    public void Retain(int block)
    {
        if (_refCounts[block] == 0)
        {
            // Only a cached block comes back into use from nobody; a free one is allocated.
            if (_cache == null || !_cache.Reuse(block)) throw new InvalidOperationException($"block {block} is free: allocate it, do not retain it");
            UsedBlocks++;
        }
        _refCounts[block]++;
    }

    /// <summary>Drops one holder; at zero the prefix cache may keep the block (if published), else it is freed.</summary>
    public void Release(int block)
    {
        if (_refCounts[block] <= 0) throw new InvalidOperationException($"block {block} released more times than it was held");
        if (--_refCounts[block] > 0) return;
        UsedBlocks--;
        if (_cache?.Keep(block) != true) _free.Push(block);
    }

    /// <summary>
    /// Start of one head's rows (K or V) of one layer inside a block: BlockSize rows of head_dim elements of
    /// <typeparamref name="TElement"/>, which must be the pool's element type (float for F32, Half for F16).
    /// </summary>
    public TElement* Rows<TElement>(int block, int layer, bool value, int kvHead) where TElement : unmanaged =>
        Origin<TElement>() + RowsOffset(block, layer, value, kvHead);

    /// <summary>Where <see cref="Rows"/> starts, in elements from the origin.</summary>
    public long RowsOffset(int block, int layer, bool value, int kvHead) =>
        block * BlockElements + (((long)layer * 2 + (value ? 1 : 0)) * Config.KvHeadCount + kvHead) * BlockSize * Config.HeadDim;

    /// <summary>The start of the pool's storage, which every block lies after, as elements of the pool's type.</summary>
    public TElement* Origin<TElement>() where TElement : unmanaged
    {
        bool matches = ElementType switch
        {
            KvElementType.F32 => typeof(TElement) == typeof(float),
            KvElementType.F16 => typeof(TElement) == typeof(Half),
            _ => typeof(TElement) == typeof(sbyte),
        };
        if (!matches) throw new InvalidOperationException($"this pool stores {ElementType} elements, not {typeof(TElement).Name}");
        return (TElement*)Storage;
    }

    /// <summary>Q8_0 pools: the scale plane; the scale of the element at offset o lies at o / <see cref="ScaleGroup"/>.</summary>
    public float* ScaleOrigin()
    {
        if (ElementType != KvElementType.Q8_0) throw new InvalidOperationException($"this pool stores {ElementType} elements, which have no scales");
        return (float*)(Storage + BlockElements * BlockCount);
    }

    /// <summary>Elements per Q8_0 scale (<see cref="KvElementTypes.Q8Group"/>).</summary>
    public int ScaleGroup => KvElementTypes.Q8Group(Config.HeadDim);

    private byte* Storage
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage == null, this);
            return _storage;
        }
    }

    /// <summary>Elements from a head's K rows to its V rows of the same layer and block.</summary>
    public long ValueRowsDistance => (long)Config.KvHeadCount * BlockSize * Config.HeadDim;

    /// <summary>Copies a whole block's contents (copy-on-write).</summary>
    public void CopyBlock(int from, int to)
    {
        long elements = BlockElements;
        if (ElementType == KvElementType.Q8_0)
        {
            // The integers, then the block's run of the scale plane.
            Buffer.MemoryCopy(Storage + from * elements, Storage + to * elements, elements, elements);
            long scales = elements / ScaleGroup;
            Buffer.MemoryCopy(ScaleOrigin() + from * scales, ScaleOrigin() + to * scales, scales * sizeof(float), scales * sizeof(float));
            return;
        }
        long bytes = ElementType.Bytes(elements, Config.HeadDim);
        Buffer.MemoryCopy(Storage + from * bytes, Storage + to * bytes, bytes, bytes);
    }

    /// <summary>Checks the bookkeeping: every block is free, cached or held, exactly once.</summary>
    public void Verify()
    {
        int held = 0, cached = 0;
        var inFree = new HashSet<int>(_free);
        if (inFree.Count != _free.Count) throw new InvalidOperationException("a block is on the free list twice");
        for (int b = 0; b < BlockCount; b++)
        {
            if (_refCounts[b] < 0) throw new InvalidOperationException($"block {b} has refcount {_refCounts[b]}");
            if (_refCounts[b] > 0 && inFree.Contains(b)) throw new InvalidOperationException($"block {b} is held (refcount {_refCounts[b]}) and free");
            if (_refCounts[b] > 0) held++;
            else if (!inFree.Contains(b)) cached++;
        }
        if (held != UsedBlocks) throw new InvalidOperationException($"{held} blocks held but UsedBlocks says {UsedBlocks}");
        // A block nobody holds and not free must be the prefix cache's, and it must know of exactly those.
        if (cached != CachedBlocks) throw new InvalidOperationException($"{cached} blocks are neither held nor free but the prefix cache keeps {CachedBlocks}");
    }

    public void Dispose()
    {
        if (_storage == null) return;
        NativeMemory.AlignedFree(_storage);
        _storage = null;
    }
}
