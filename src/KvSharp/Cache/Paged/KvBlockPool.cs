using KvSharp.Cache.Policies;
using System.Runtime.InteropServices;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// A fixed KV memory budget divided into blocks of <see cref="BlockSize"/> positions. Each block holds K and V for
/// every layer and KV head of its positions. Keys and values lie in planes of their own, since their types
/// (<see cref="Format"/>: -ctk/-ctv) may store rows of different sizes; one allocation holds, in this order, the key
/// plane, the value plane, the key side plane and the value side plane (side data: Q8_0's scales; a type without it
/// has an empty side plane). Every plane is laid out [block][layer][kv_head][slot] with one row per slot, so one
/// head's rows in a block are contiguous and a row index r (<see cref="RowIndex"/>) names the key row at
/// key plane + r x KeyRowBytes, its side data at key side plane + r x KeySideBytes, and the value row of the same
/// position at the same index in the value planes. A block's bytes are therefore four runs, one per plane
/// (<see cref="BlockRows"/>, <see cref="BlockSide"/>), each RowsPerSide x that plane's bytes per row long.
/// Where the model's values are its keys and the format stores both alike (<see cref="ValuesAreKeys"/>: latent
/// attention), the pool has no value planes: the value plane is the key plane and the value side plane the key side
/// plane, so a block is two runs and every reader of a value reads its key's row.
/// Blocks are reference-counted (sequences that share a prefix share its blocks). The pool keeps storage, refcounts
/// and the free list; which blocks outlive their last holder is its prefix cache's business (<see cref="PrefixCache"/>,
/// attached through <see cref="ICachedBlocks"/>), which it asks for a block back when none is free.
/// Not thread-safe: the engine's scheduler owns it.
/// </summary>
public sealed unsafe class KvBlockPool : IDisposable
{
    private byte* _storage;
    private readonly int[] _refCounts;
    private readonly Stack<int> _free = new();
    private ICachedBlocks? _cache;

    public ModelConfig Config { get; }
    /// <summary>Which layers a block holds: every layer, or one group of them (a model's local layers apart from its global ones).</summary>
    public KvLayerGroups LayerGroups { get; }
    public int BlockSize { get; }
    public int BlockCount { get; }
    /// <summary>How each key and value element is stored (F16 halves the bytes per block).</summary>
    public KvElementFormat Format { get; }
    /// <summary>The built-in element type (<see cref="Format"/>); throws for a strategy that <see cref="KvElementType"/> does not name.</summary>
    public KvElementType ElementType =>
        Format.Type ?? throw new InvalidOperationException($"this pool stores {Format.Name}, which KvElementType does not name; see Format");
    /// <summary>Elements (keys and values of every layer of its group and every head) in one block.</summary>
    public long BlockElements => RowsPerBlock * Config.HeadDim;
    /// <summary>Rows (keys and values of every layer and head, head_dim elements each) in one block: the keys' alone where <see cref="ValuesAreKeys"/>.</summary>
    public long RowsPerBlock => (ValuesAreKeys ? 1 : 2) * RowsPerSide;
    /// <summary>
    /// Whether each row is stored once, the value planes views of the key planes (<see cref="KvElementFormat.StoresRowsOnce"/>:
    /// a latent model's pool of one type): writers store the key row only, readers of a value read the key's.
    /// </summary>
    public bool ValuesAreKeys { get; }
    /// <summary>Key rows (or value rows) of every layer and head in one block.</summary>
    public long RowsPerSide { get; }
    /// <summary>Bytes of a key row's elements, and of its side data (<see cref="Format"/>'s key type).</summary>
    public int KeyRowBytes { get; }
    public int KeySideBytes { get; }
    /// <summary>Bytes of a value row's elements, and of its side data (<see cref="Format"/>'s value type).</summary>
    public int ValueRowBytes { get; }
    public int ValueSideBytes { get; }
    public long BytesPerBlock => RowsPerSide * (KeyRowBytes + KeySideBytes + (ValuesAreKeys ? 0 : ValueRowBytes + ValueSideBytes));
    public long TotalBytes => BytesPerBlock * BlockCount;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks { get; private set; }
    /// <summary>Blocks nobody holds that still cache a published prefix (reusable, evictable).</summary>
    public int CachedBlocks => _cache?.Count ?? 0;
    /// <summary>Blocks that can be handed out now (free or evictable).</summary>
    public int AvailableBlocks => BlockCount - UsedBlocks;
    /// <summary>Blocks on the free list: handed out before any cached block is evicted.</summary>
    public int FreeBlocks => _free.Count;

    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementType elementType = KvElementType.F32)
        : this(config, blockSize, blockCount, KvElementFormat.Of(elementType)) { }

    /// <summary>A pool of any element type, including a strategy defined outside this library (<see cref="KvElementFormat.Of{TKv}"/>).</summary>
    /// <exception cref="KvCacheSizeException">The blocks do not fit in memory.</exception>
    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementFormat format) : this(config, blockSize, blockCount, format, null) { }

    /// <summary>
    /// A pool whose KIVI keys (a format whose rows do not stand alone) are stored before <paramref name="rope"/>, the
    /// model's (<c>LlmModel.Rope</c>), as a session's are; null: the config's RoPE without per-frequency factors.
    /// </summary>
    /// <exception cref="ArgumentException">A KIVI format with a block size that is not a multiple of its group of 32 positions.</exception>
    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementFormat format, RotaryEmbedding? rope)
        : this(config, blockSize, blockCount, format, rope, null) { }

    /// <summary>
    /// A pool whose blocks hold the layers of one of <paramref name="groups"/> each (null: every layer,
    /// <see cref="KvLayerGroups.Whole"/>): a model's local layers grouped apart, so that their blocks can go back to
    /// the pool behind the window.
    /// </summary>
    /// <exception cref="NotSupportedException">Groups that split the local layers with a format whose rows do not stand alone (KIVI).</exception>
    public KvBlockPool(ModelConfig config, int blockSize, int blockCount, KvElementFormat format, RotaryEmbedding? rope, KvLayerGroups? groups)
    {
        ArgumentNullException.ThrowIfNull(format);
        groups ??= KvLayerGroups.Whole(config);
        if (groups.SplitsLocalLayers && !format.RowsStandAlone)
            throw new NotSupportedException($"{format.Name} cannot keep local layers apart: its rows are quantized in groups along positions");
        PerLayerPositions.Refuse(config, KvCachePolicy.Full, format);
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        // A group of rows is quantized into one block: it must not straddle two.
        if (!format.RowsStandAlone && blockSize % KvKivi.GroupRows != 0)
            throw new ArgumentException($"block size {blockSize} cannot hold {format.Name}: its rows are quantized {KvKivi.GroupRows} positions at a time, " +
                $"so the block size must be a multiple of {KvKivi.GroupRows}", nameof(blockSize));
        if (blockCount <= 0) throw new ArgumentOutOfRangeException(nameof(blockCount), blockCount, "the pool needs at least one block");
        Config = config;
        BlockSize = blockSize;
        BlockCount = blockCount;
        Format = format;
        LayerGroups = groups;
        RowsPerSide = (long)groups.LayersPerBlock * config.KvHeadCount * blockSize;
        KeyRowBytes = format.Keys.RowBytes(config.HeadDim);
        KeySideBytes = format.Keys.SideBytes(config.HeadDim);
        ValueRowBytes = format.Values.RowBytes(config.HeadDim);
        ValueSideBytes = format.Values.SideBytes(config.HeadDim);
        ValuesAreKeys = format.StoresRowsOnce(config);
        // One allocation: the four planes (two where the values are the keys) one after another, so a row index finds a position's rows in each.
        Int128 bytes = (Int128)BytesPerBlock * blockCount;
        KvSizing.EnsureFits($"a KV block pool of {blockCount:N0} blocks of {blockSize} positions ({format.Name}, {BytesPerBlock:N0} bytes per block)",
            bytes, 0);
        // On huge pages: a decode step reads every running sequence's rows from all over the pool.
        _storage = HugePageMemory.Allocate((long)bytes);
        NativeMemory.Clear(_storage, (nuint)(long)bytes);
        if (!format.RowsStandAlone)
        {
            // Where each block sits in the sequences that hold it (the same for every holder: forks keep a block's
            // place), which KIVI reads to rotate a row and to tell its pending rows apart.
            BlockPositions = GC.AllocateArray<int>(blockCount, pinned: true);
            if (!format.Keys.RowsStandAlone)
            {
                rope ??= new RotaryEmbedding(config, null);
                KeyRotation = new RotaryTable(rope.Dims, config.RopeStyle == RopeStyle.NeoX, rope.Angles);
            }
        }
        Rows = format.CreatePaged(this);
        _refCounts = new int[blockCount];
        for (int b = blockCount - 1; b >= 0; b--) _free.Push(b);
    }

    /// <summary>A pool sized by a byte budget (rounded down to whole blocks).</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, KvElementType elementType = KvElementType.F32) =>
        FromBudget(config, blockSize, budgetBytes, KvElementFormat.Of(elementType));

    /// <summary>A pool of any format (keys and values of their own types) sized by a byte budget.</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, KvElementFormat format) =>
        FromBudget(config, blockSize, budgetBytes, format, null);

    /// <summary>A pool sized by a byte budget whose KIVI keys are stored before <paramref name="rope"/> (see the constructor).</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, KvElementFormat format, RotaryEmbedding? rope) =>
        FromBudget(config, blockSize, budgetBytes, format, rope, null);

    /// <summary>A pool sized by a byte budget whose blocks hold the layers of one of <paramref name="groups"/> each (see the constructor).</summary>
    public static KvBlockPool FromBudget(ModelConfig config, int blockSize, long budgetBytes, KvElementFormat format, RotaryEmbedding? rope,
        KvLayerGroups? groups)
    {
        ArgumentNullException.ThrowIfNull(format);
        groups ??= KvLayerGroups.Whole(config);
        // Bytes per token count every layer, and a layer's share is the same in each (rows stand alone where groups split).
        long perBlock = format.BytesPerToken(config) / config.LayerCount * groups.LayersPerBlock * blockSize;
        KvSizing.EnsureFits($"a KV budget of {budgetBytes:N0} bytes ({format.Name})", budgetBytes, 0);
        long blocks = budgetBytes / perBlock;
        if (blocks < 1)
            throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, $"the budget cannot hold one block of {perBlock} bytes");
        return new KvBlockPool(config, blockSize, (int)Math.Min(blocks, int.MaxValue), format, rope, groups);
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

    /// <summary>
    /// Puts a block that nobody holds and the prefix cache gave up back on the free list: a local block of a prefix
    /// block the cache evicted, which no lookup can reach any more.
    /// </summary>
    internal void FreeCached(int block)
    {
        if (_refCounts[block] != 0) throw new InvalidOperationException($"block {block} is held: only a cached block nobody holds can be freed");
        _free.Push(block);
    }

    /// <summary>
    /// Blocks a sequence of <paramref name="positions"/> positions holds once computed: every block of them, or with
    /// local layers kept apart, the global group's and each local group's from the block its last token's window
    /// starts in.
    /// </summary>
    public long BlocksForSequence(int positions)
    {
        long all = (positions + (long)BlockSize - 1) / BlockSize;
        return LayerGroups.SplitsLocalLayers && positions > 0 ? all + (LayerGroups.Count - 1) * (all - FirstLocalBlock(positions - 1)) : all;
    }

    /// <summary>
    /// With local layers kept apart: the most blocks one local group's table holds at once for a sequence of
    /// <paramref name="total"/> positions computed in steps of at most <paramref name="stepTokens"/>. Blocks before the
    /// window go back only when the next step reserves, which counts its blocks before that release, so at that moment
    /// the table holds every block touched from the previous step's window start (a tile early) to the new step's end.
    /// </summary>
    public long MostLocalBlocks(long stepTokens, long total)
    {
        long bs = BlockSize, span = 2 * Math.Min(stepTokens, total) + LayerGroups.LocalWindow - 1 + Attention.CausalAttention.TileSize - 1;
        return Math.Min((total + bs - 1) / bs, (span - 1 + bs - 1) / bs + 1);
    }

    /// <summary>
    /// With local layers kept apart (<see cref="LayerGroups"/>): the first block a local layer's query at
    /// <paramref name="position"/> or later reads. The attention starts at the tile holding the first position of its
    /// window (<see cref="Attention.CausalAttention.TileSize"/>), so the blocks before it are never read again.
    /// </summary>
    public int FirstLocalBlock(int position) =>
        Math.Max(0, position - LayerGroups.LocalWindow + 1) / Attention.CausalAttention.TileSize * Attention.CausalAttention.TileSize / BlockSize;

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
    /// For a format whose rows do not stand alone (KIVI): the first position of each block in the sequences holding
    /// it (pinned, so a head's header can point at it); set as sequences take blocks. Null otherwise.
    /// </summary>
    internal int[]? BlockPositions { get; }

    /// <summary>The model's rotary angles per position, for KIVI keys stored before RoPE; null otherwise.</summary>
    internal RotaryTable? KeyRotation { get; }

    /// <summary>The storage specialised for the pool's element type, which sequences write and attend through.</summary>
    internal PagedKvStorage Rows { get; }

    /// <summary>
    /// Index of the first of one head's BlockSize rows of one layer inside a block, in every plane: its keys lie at
    /// <see cref="KeyPlane"/> + index x KeyRowBytes, their side data at <see cref="KeySidePlane"/> + index x
    /// KeySideBytes, its values at the same index in the value planes.
    /// </summary>
    public long RowIndex(int block, int layer, int kvHead) =>
        block * RowsPerSide + ((long)LayerGroups.SlotOf(layer) * Config.KvHeadCount + kvHead) * BlockSize;

    /// <summary>The start of the pool's key plane (the allocation's start).</summary>
    internal byte* KeyPlane => Storage;

    /// <summary>The start of the value plane, right after the key plane; the key plane itself where <see cref="ValuesAreKeys"/>.</summary>
    internal byte* ValuePlane => ValuesAreKeys ? KeyPlane : KeyPlane + RowsPerSide * BlockCount * KeyRowBytes;

    /// <summary>The start of the key side plane, right after the value plane, or the key plane where the values are the keys (its end, for a key type without side data).</summary>
    internal byte* KeySidePlane => (ValuesAreKeys ? KeyPlane + RowsPerSide * BlockCount * KeyRowBytes : ValuePlane + RowsPerSide * BlockCount * ValueRowBytes);

    /// <summary>The start of the value side plane, right after the key side plane; the key side plane itself where <see cref="ValuesAreKeys"/>.</summary>
    internal byte* ValueSidePlane => ValuesAreKeys ? KeySidePlane : KeySidePlane + RowsPerSide * BlockCount * KeySideBytes;

    /// <summary>
    /// The stored bytes of a block's key rows (or value rows), for inspection and serialization: RowsPerSide rows laid
    /// out [layer][kv_head][slot], each KeyRowBytes (ValueRowBytes) long; a value's are the key's where <see cref="ValuesAreKeys"/>.
    /// </summary>
    public ReadOnlySpan<byte> BlockRows(int block, bool value) => value
        ? new(ValuePlane + CheckBlock(block) * RowsPerSide * ValueRowBytes, checked((int)(RowsPerSide * ValueRowBytes)))
        : new(KeyPlane + CheckBlock(block) * RowsPerSide * KeyRowBytes, checked((int)(RowsPerSide * KeyRowBytes)));

    /// <summary>The stored side data of a block's key (or value) rows (Q8_0: their scales), in the rows' order; empty for a type without.</summary>
    public ReadOnlySpan<byte> BlockSide(int block, bool value) => value
        ? new(ValueSidePlane + CheckBlock(block) * RowsPerSide * ValueSideBytes, checked((int)(RowsPerSide * ValueSideBytes)))
        : new(KeySidePlane + CheckBlock(block) * RowsPerSide * KeySideBytes, checked((int)(RowsPerSide * KeySideBytes)));

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

    /// <summary>Copies a whole block's contents (copy-on-write): its run of each plane.</summary>
    public void CopyBlock(int from, int to)
    {
        CheckBlock(from);
        CheckBlock(to);
        CopyRun(KeyPlane, KeyRowBytes, from, to);
        CopyRun(KeySidePlane, KeySideBytes, from, to);
        if (ValuesAreKeys) return;
        CopyRun(ValuePlane, ValueRowBytes, from, to);
        CopyRun(ValueSidePlane, ValueSideBytes, from, to);
    }

    private void CopyRun(byte* plane, int bytesPerRow, int from, int to)
    {
        long run = RowsPerSide * bytesPerRow;
        Buffer.MemoryCopy(plane + from * run, plane + to * run, run, run);
    }

    /// <summary>
    /// Copies a block's stored bytes (<see cref="BytesPerBlock"/>: its run of the key plane, the value plane, the key
    /// side plane and the value side plane, in that order; of the key planes alone where <see cref="ValuesAreKeys"/>) out, for a tier below RAM (<see cref="Tiers.KvTiers"/>) or a
    /// file; <see cref="CopyBlockIn"/> puts them back.
    /// </summary>
    public void CopyBlockOut(int block, Span<byte> destination)
    {
        if (destination.Length < BytesPerBlock) throw new ArgumentException($"a block of this pool is {BytesPerBlock} bytes, got room for {destination.Length}", nameof(destination));
        CheckBlock(block);
        int at = 0;
        foreach (var (plane, bytesPerRow) in Planes())
        {
            int run = checked((int)(RowsPerSide * bytesPerRow));
            new ReadOnlySpan<byte>((byte*)plane + block * (long)run, run).CopyTo(destination[at..]);
            at += run;
        }
    }

    /// <summary>Overwrites a block's stored bytes with ones <see cref="CopyBlockOut"/> gave (of a pool of the same layout).</summary>
    public void CopyBlockIn(ReadOnlySpan<byte> source, int block)
    {
        if (source.Length != BytesPerBlock) throw new ArgumentException($"a block of this pool is {BytesPerBlock} bytes, got {source.Length}", nameof(source));
        CheckBlock(block);
        int at = 0;
        foreach (var (plane, bytesPerRow) in Planes())
        {
            int run = checked((int)(RowsPerSide * bytesPerRow));
            source.Slice(at, run).CopyTo(new Span<byte>((byte*)plane + block * (long)run, run));
            at += run;
        }
    }

    /// <summary>The planes a block has a run of, in their order in the allocation and in a block's bytes.</summary>
    private (nint Plane, int BytesPerRow)[] Planes() => ValuesAreKeys
        ? [((nint)KeyPlane, KeyRowBytes), ((nint)KeySidePlane, KeySideBytes)]
        : [((nint)KeyPlane, KeyRowBytes), ((nint)ValuePlane, ValueRowBytes), ((nint)KeySidePlane, KeySideBytes), ((nint)ValueSidePlane, ValueSideBytes)];

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
        HugePageMemory.Free(_storage);
        _storage = null;
    }
}
