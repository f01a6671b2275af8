using System.Runtime.InteropServices;
using KvSharp.Models;

namespace KvSharp.Cache.Paged;

/// <summary>
/// A fixed KV memory budget divided into blocks of <see cref="BlockSize"/> positions. Each block holds K and V for
/// every layer and KV head of its positions, laid out [layer][K|V][kv_head][slot][head_dim] so one head's rows in a
/// block are contiguous, each row stored as the pool's element type (<see cref="Format"/>): a row's elements in one
/// plane, its side data (Q8_0's scales) in a second plane after the first, row r's at r x RowBytes and r x SideBytes.
/// Blocks are reference-counted (sequences that share a prefix share its blocks). Full blocks
/// can be published under their prefix hash; when no sequence holds a published block it stays cached and is
/// reused for a matching prefix, or evicted in least-recently-used order when a fresh block is needed.
/// Not thread-safe: the engine's scheduler owns it.
/// </summary>
public sealed unsafe class KvBlockPool : IDisposable
{
    private byte* _storage;
    private readonly int[] _refCounts;
    private readonly Stack<int> _free = new();
    // Published blocks: hash -> block, and per block its hash, tokens and parent block for verification.
    private readonly Dictionary<ulong, int> _index = [];
    private readonly ulong[] _hash;
    private readonly bool[] _published;
    private readonly int[] _parent;
    private readonly ulong[] _root;
    private readonly int[] _tokens;
    // Published blocks that no sequence holds, least recently used first.
    private readonly LinkedList<int> _lru = new();
    private readonly LinkedListNode<int>?[] _lruNode;

    public ModelConfig Config { get; }
    public int BlockSize { get; }
    public int BlockCount { get; }
    /// <summary>How each key and value element is stored (F16 halves the bytes per block).</summary>
    public KvElementFormat Format { get; }
    /// <summary>The built-in element type (<see cref="Format"/>); throws for a strategy that <see cref="KvElementType"/> does not name.</summary>
    public KvElementType ElementType =>
        Format.Type ?? throw new InvalidOperationException($"this pool stores {Format.Name}, which KvElementType does not name; see Format");
    /// <summary>Elements (keys and values of every layer and head) in one block.</summary>
    public long BlockElements => RowsPerBlock * Config.HeadDim;
    /// <summary>Rows (keys and values of every layer and head, head_dim elements each) in one block.</summary>
    public long RowsPerBlock { get; }
    /// <summary>Bytes of a row's elements, and of its side data (<see cref="Format"/>).</summary>
    public int RowBytes { get; }
    public int SideBytes { get; }
    public long BytesPerBlock => RowsPerBlock * (RowBytes + SideBytes);
    public long TotalBytes => BytesPerBlock * BlockCount;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks { get; private set; }
    /// <summary>Blocks nobody holds that still cache a published prefix (reusable, evictable).</summary>
    public int CachedBlocks => _lru.Count;
    /// <summary>Blocks that can be handed out now (free or evictable).</summary>
    public int AvailableBlocks => BlockCount - UsedBlocks;
    public BlockHashFunction HashFunction { get; }

    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, BlockHashFunction? hash = null,
        KvElementType elementType = KvElementType.F32)
        : this(config, blockSize, blockCount, KvElementFormat.Of(elementType), hash) { }

    /// <summary>A pool of any element type, including a strategy defined outside this library (<see cref="KvElementFormat.Of{TKv}"/>).</summary>
    /// <exception cref="KvCacheSizeException">The blocks do not fit in memory.</exception>
    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementFormat format, BlockHashFunction? hash = null)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        if (blockCount <= 0) throw new ArgumentOutOfRangeException(nameof(blockCount), blockCount, "the pool needs at least one block");
        Config = config;
        BlockSize = blockSize;
        BlockCount = blockCount;
        Format = format;
        RowsPerBlock = 2L * config.LayerCount * config.KvHeadCount * blockSize;
        RowBytes = format.RowBytes(config.HeadDim);
        SideBytes = format.SideBytes(config.HeadDim);
        HashFunction = hash ?? PrefixHasher.Hash;
        // One allocation: the element plane, then the side plane, so a row index finds both.
        Int128 bytes = (Int128)BytesPerBlock * blockCount;
        KvSizing.EnsureFits($"a KV block pool of {blockCount:N0} blocks of {blockSize} positions ({format.Name}, {BytesPerBlock:N0} bytes per block)",
            bytes, 0);
        _storage = (byte*)NativeMemory.AlignedAlloc((nuint)(long)bytes, 64);
        NativeMemory.Clear(_storage, (nuint)(long)bytes);
        Rows = format.CreatePaged(this);
        _refCounts = new int[blockCount];
        _hash = new ulong[blockCount];
        _published = new bool[blockCount];
        _parent = new int[blockCount];
        _root = new ulong[blockCount];
        _tokens = new int[blockCount * blockSize];
        _lruNode = new LinkedListNode<int>?[blockCount];
        for (int b = blockCount - 1; b >= 0; b--) _free.Push(b);
    }

    /// <summary>A pool sized by a byte budget (rounded down to whole blocks).</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, BlockHashFunction? hash = null,
        KvElementType elementType = KvElementType.F32)
    {
        var format = KvElementFormat.Of(elementType);
        long perBlock = format.BytesPerToken(config) * blockSize;
        KvSizing.EnsureFits($"a KV budget of {budgetBytes:N0} bytes ({format.Name})", budgetBytes, 0);
        long blocks = budgetBytes / perBlock;
        if (blocks < 1)
            throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, $"the budget cannot hold one block of {perBlock} bytes");
        return new KvBlockPool(config, blockSize, (int)Math.Min(blocks, int.MaxValue), hash, elementType);
    }

    public int RefCount(int block) => _refCounts[block];
    public bool IsPublished(int block) => _published[block];

    /// <summary>Takes a fresh block (refcount 1): a free one, else the least recently used cached one.</summary>
    public bool TryAllocate(out int block)
    {
        if (_free.Count > 0)
        {
            block = _free.Pop();
        }
        else if (_lru.First is { } oldest)
        {
            // Evict the least recently used cached prefix block.
            block = oldest.Value;
            _lru.RemoveFirst();
            _lruNode[block] = null;
            RemoveFromIndex(block);
        }
        else
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
            // A cached block comes back into use.
            if (_lruNode[block] is { } node) { _lru.Remove(node); _lruNode[block] = null; }
            UsedBlocks++;
        }
        _refCounts[block]++;
    }

    /// <summary>Drops one holder; at zero a published block stays cached (LRU), an unpublished one is freed.</summary>
    public void Release(int block)
    {
        if (_refCounts[block] <= 0) throw new InvalidOperationException($"block {block} released more times than it was held");
        if (--_refCounts[block] > 0) return;
        UsedBlocks--;
        if (_published[block]) _lruNode[block] = _lru.AddLast(block);
        else _free.Push(block);
    }

    /// <summary>
    /// Publishes a full block under the hash of its tokens chained to its parent's (parent -1 for the first block).
    /// <paramref name="root"/> is the chain's seed (model identity and tenant salt), kept so that even a colliding
    /// hash can never hand one tenant's block to another. Returns the hash. An existing entry with the same hash is
    /// kept (the first writer wins).
    /// </summary>
    public ulong Publish(int block, int parentBlock, ulong root, ulong parentHash, ReadOnlySpan<int> tokens)
    {
        if (tokens.Length != BlockSize) throw new ArgumentException($"a full block has {BlockSize} tokens, got {tokens.Length}");
        ulong h = HashFunction(parentHash, tokens);
        if (_published[block]) return _hash[block];
        tokens.CopyTo(_tokens.AsSpan(block * BlockSize, BlockSize));
        _hash[block] = h;
        _parent[block] = parentBlock;
        _root[block] = root;
        _published[block] = true;
        _index.TryAdd(h, block);
        return h;
    }

    /// <summary>
    /// Finds the cached block holding <paramref name="tokens"/> right after <paramref name="parentBlock"/>.
    /// The hash only proposes a candidate: its chain root, parent and tokens must match exactly, so a collision is a miss.
    /// </summary>
    public bool TryFind(int parentBlock, ulong root, ulong parentHash, ReadOnlySpan<int> tokens, out int block, out ulong hash)
    {
        hash = HashFunction(parentHash, tokens);
        if (_index.TryGetValue(hash, out block) && _published[block] && _parent[block] == parentBlock && _root[block] == root
            && _tokens.AsSpan(block * BlockSize, BlockSize).SequenceEqual(tokens))
            return true;
        block = -1;
        return false;
    }

    /// <summary>Takes a block out of the prefix index (its contents are about to change or be dropped).</summary>
    public void Unpublish(int block)
    {
        if (!_published[block]) return;
        RemoveFromIndex(block);
        if (_lruNode[block] is { } node)
        {
            _lru.Remove(node);
            _lruNode[block] = null;
            if (_refCounts[block] == 0) _free.Push(block);
        }
    }

    private void RemoveFromIndex(int block)
    {
        _published[block] = false;
        if (_index.TryGetValue(_hash[block], out int indexed) && indexed == block) _index.Remove(_hash[block]);
    }

    /// <summary>Drops every cached block (nobody holds them) back to the free list.</summary>
    public void ClearCache()
    {
        while (_lru.First is { } node) Unpublish(node.Value);
    }

    /// <summary>The storage specialised for the pool's element type, which sequences write and attend through.</summary>
    internal PagedKvStorage Rows { get; }

    /// <summary>
    /// Index of the first of one head's BlockSize rows (K or V) of one layer inside a block: its elements lie at
    /// <see cref="ElementPlane"/> + index x RowBytes, its side data at <see cref="SidePlane"/> + index x SideBytes.
    /// </summary>
    public long RowIndex(int block, int layer, bool value, int kvHead) =>
        block * RowsPerBlock + (((long)layer * 2 + (value ? 1 : 0)) * Config.KvHeadCount + kvHead) * BlockSize;

    /// <summary>Rows from a head's K rows to its V rows of the same layer and block.</summary>
    public long RowsFromKeysToValues => (long)Config.KvHeadCount * BlockSize;

    /// <summary>The start of the pool's element plane, which every block's rows lie after.</summary>
    internal byte* ElementPlane => Storage;

    /// <summary>The start of the side plane, right after the element plane (its end, for a type without side data).</summary>
    internal byte* SidePlane => Storage + RowsPerBlock * BlockCount * RowBytes;

    /// <summary>The stored bytes of a block's rows (element plane), for inspection.</summary>
    public ReadOnlySpan<byte> BlockRows(int block) => new(ElementPlane + CheckBlock(block) * RowsPerBlock * RowBytes, checked((int)(RowsPerBlock * RowBytes)));

    /// <summary>The stored side data of a block's rows (Q8_0: their scales); empty for a type without.</summary>
    public ReadOnlySpan<byte> BlockSide(int block) => new(SidePlane + CheckBlock(block) * RowsPerBlock * SideBytes, checked((int)(RowsPerBlock * SideBytes)));

    private long CheckBlock(int block) =>
        (uint)block < (uint)BlockCount ? block : throw new ArgumentOutOfRangeException(nameof(block), block, $"the pool has {BlockCount} blocks");

    private byte* Storage
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage == null, this);
            return _storage;
        }
    }

    /// <summary>Copies a whole block's contents (copy-on-write): its run of the element plane, then of the side plane.</summary>
    public void CopyBlock(int from, int to)
    {
        long rows = RowsPerBlock * RowBytes, side = RowsPerBlock * SideBytes;
        Buffer.MemoryCopy(ElementPlane + CheckBlock(from) * rows, ElementPlane + CheckBlock(to) * rows, rows, rows);
        Buffer.MemoryCopy(SidePlane + from * side, SidePlane + to * side, side, side);
    }

    /// <summary>Checks the bookkeeping: every block is free, cached or held, exactly once.</summary>
    public void Verify()
    {
        int held = 0, freeSeen = 0;
        var inFree = new HashSet<int>(_free);
        if (inFree.Count != _free.Count) throw new InvalidOperationException("a block is on the free list twice");
        for (int b = 0; b < BlockCount; b++)
        {
            bool free = inFree.Contains(b), cached = _lruNode[b] != null;
            if (_refCounts[b] < 0) throw new InvalidOperationException($"block {b} has refcount {_refCounts[b]}");
            if (_refCounts[b] > 0) held++;
            if (free) freeSeen++;
            int states = (_refCounts[b] > 0 ? 1 : 0) + (free ? 1 : 0) + (cached ? 1 : 0);
            if (states != 1) throw new InvalidOperationException($"block {b} is in {states} states (refcount {_refCounts[b]}, free {free}, cached {cached})");
        }
        if (held != UsedBlocks) throw new InvalidOperationException($"{held} blocks held but UsedBlocks says {UsedBlocks}");
    }

    public void Dispose()
    {
        if (_storage == null) return;
        NativeMemory.AlignedFree(_storage);
        _storage = null;
    }
}
