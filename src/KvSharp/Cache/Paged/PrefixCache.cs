using KvSharp.Cache.Policies;
using KvSharp.Cache.Tiers;

namespace KvSharp.Cache.Paged;

/// <summary>
/// Automatic prefix caching over a <see cref="KvBlockPool"/>, in one place (nano-vllm keeps it in its block manager):
/// each full block a sequence computes is published under a hash chained over every token before it and seeded
/// with the model's identity and the tenant's salt; a new sequence adopts the longest run of published blocks that
/// matches its tokens instead of computing them. A hash only proposes a block: its chain root, its parent and its
/// tokens must match, so a collision costs a recompute, never a wrong answer. Published blocks nobody holds stay
/// cached, least recently used first out when the pool needs a fresh block; with <see cref="KvTiers"/>, an evicted
/// block is written down to them and a lookup that runs out of blocks in RAM fetches the next ones back from them.
/// A hit ends at a token, not a block: after the whole blocks that match, the lookup takes the leading rows of the
/// cached block (a published one, or the last partial block a finished sequence left, its tail) that shares the most
/// tokens with what follows, and the sequence copies that block on its first write (SGLang's radix cache matches at
/// token granularity too). Not with a KV format that quantizes rows in groups (KIVI): there a row is not its own.
/// With a model's local layers kept apart (<see cref="KvLayerGroups"/>), a published block is its global layers' block,
/// and the local groups' blocks of the same positions go with it while the cache keeps them: a hit reaches as far as
/// every local group still holds the window before the hit's end (the blocks before it are never read); a local block
/// is evicted on its own, and with its global block. Such a cache has no tiers and no prefix files.
/// Not thread-safe: the scheduler owns it.
/// </summary>
public sealed class PrefixCache : ICachedBlocks
{
    private readonly KvBlockPool _pool;
    private readonly string _modelIdentity;
    // Published blocks: hash -> block, and per block what confirms a hit (its hash, root, parent and tokens).
    private readonly Dictionary<ulong, int> _index = [];
    private readonly ulong[] _hash;
    private readonly bool[] _published;
    private readonly ulong[] _root;
    private readonly ulong[] _parentHash;
    private readonly int[] _parent;
    private readonly int[] _tokens;
    // Bumped when a block is evicted (its contents will change); a child remembers its parent's, so it can never
    // match under a parent block that was reused for another prefix, even when hashes collide.
    private readonly int[] _generation;
    private readonly int[] _parentGeneration;
    // Times each published block was adopted since it was published (the inspector's hit counts).
    private readonly int[] _hits;
    // Rows of each published block that hold its tokens: BlockSize, or fewer for a tail (never in the hash index).
    private readonly int[] _rows;
    // Published blocks and tails by the chain hash before them: where a hit that ends inside a block looks.
    private readonly Dictionary<ulong, List<int>> _children = [];
    private readonly bool _partialHits;
    // Published blocks that nobody holds, least recently used first.
    private readonly LinkedList<int> _lru = new();
    private readonly LinkedListNode<int>?[] _lruNode;
    private readonly List<int> _matched = [];
    private long _queriedTokens, _hitTokens, _tierHitTokens, _evictedBlocks;
    private readonly KvTiers? _tiers;
    // What tier keys carry so that blocks of another KV type or block size never match.
    private readonly ulong _layoutId;
    // With local layers kept apart: local groups, each published global block's local blocks (block b's of group g at
    // b x _localGroups + g - 1, -1 where the cache holds none), and for a published local block, that index (-1 else).
    private readonly int _localGroups;
    private readonly int[]? _localOf;
    private readonly int[]? _localAt;

    /// <param name="pool">The blocks to cache; a pool has at most one prefix cache.</param>
    /// <param name="modelIdentity">What identifies the model that computes the blocks: blocks of another model never match.</param>
    /// <param name="hash">The block hash (tests substitute a colliding one); default <see cref="PrefixHasher.Hash"/>.</param>
    /// <param name="tiers">Storage below RAM that evicted blocks are written to and fetched back from; null for none.</param>
    public PrefixCache(KvBlockPool pool, string modelIdentity, BlockHashFunction? hash = null, KvTiers? tiers = null)
    {
        _pool = pool;
        _modelIdentity = modelIdentity;
        HashFunction = hash ?? PrefixHasher.Hash;
        int blocks = pool.BlockCount;
        _hash = new ulong[blocks];
        _published = new bool[blocks];
        _root = new ulong[blocks];
        _parentHash = new ulong[blocks];
        _tiers = tiers;
        // A pool that stores each row once names it, so its blocks are never taken for (or by) blocks that hold the row twice;
        // every other layout's id is what it was.
        _layoutId = PrefixHasher.Seed($"{pool.Format.Name}|{pool.BlockSize}|{pool.RowsPerSide}|{pool.KeyRowBytes}|{pool.KeySideBytes}|{pool.ValueRowBytes}|{pool.ValueSideBytes}"
            + (pool.ValuesAreKeys ? "|values are keys" : ""), null);
        _parent = new int[blocks];
        _tokens = new int[blocks * pool.BlockSize];
        _generation = new int[blocks];
        _parentGeneration = new int[blocks];
        _hits = new int[blocks];
        _rows = new int[blocks];
        _partialHits = pool.Format.RowsStandAlone;
        _lruNode = new LinkedListNode<int>?[blocks];
        if (pool.LayerGroups.SplitsLocalLayers)
        {
            // Tiers and prefix files carry whole-layer blocks found by their hash alone; a local block is found through its global one.
            if (tiers != null)
                throw new NotSupportedException($"KV tiers keep blocks of every layer: with {pool.Config.Architecture}'s local layers kept apart ({pool.LayerGroups}) there are none; keep every position of the local layers (--swa-full) to use tiers");
            _localGroups = pool.LayerGroups.Count - 1;
            _localOf = new int[blocks * _localGroups];
            _localAt = new int[blocks];
            Array.Fill(_localOf, -1);
            Array.Fill(_localAt, -1);
        }
        pool.Attach(this);
    }

    public KvBlockPool Pool => _pool;
    public BlockHashFunction HashFunction { get; }
    /// <summary>Published blocks nobody holds: reused on a hit, evicted when the pool needs a block.</summary>
    public int CachedBlocks => _lru.Count;
    /// <summary>Prompt tokens looked up (all but the last; whole blocks only under a format whose rows are quantized in groups).</summary>
    public long QueriedTokens => Interlocked.Read(ref _queriedTokens);
    /// <summary>Prompt tokens found (in RAM or in a tier).</summary>
    public long HitTokens => Interlocked.Read(ref _hitTokens);
    /// <summary>Prompt tokens of <see cref="HitTokens"/> fetched back from a tier.</summary>
    public long TierHitTokens => Interlocked.Read(ref _tierHitTokens);
    public KvTiers? Tiers => _tiers;
    /// <summary>Cached blocks given up to make room (a later lookup of their prefix computes them again, or fetches them from a tier).</summary>
    public long EvictedBlocks => Interlocked.Read(ref _evictedBlocks);

    /// <summary>A cursor at the start of the chain for this model and <paramref name="salt"/> (null: no tenant).</summary>
    public PrefixCursor Begin(string? salt) => new(PrefixHasher.Seed(_modelIdentity, salt));

    public bool IsPublished(int block) => _published[block];

    /// <summary>
    /// Where <paramref name="block"/> stands in the cache, for inspection: published or not, kept with no holder,
    /// its chain's root, its parent (-1 for a chain's first block, or when the parent block has since been evicted and
    /// reused, which leaves this block unreachable), and how many times it was adopted.
    /// </summary>
    public PrefixBlockState Describe(int block)
    {
        if (!_published[block]) return default;
        // A local block goes with its global block: kept (a cell of the map), not a node of the tree of its own.
        if (_localAt != null && _localAt[block] >= 0) return new PrefixBlockState(false, _lruNode[block] != null, 0, -1, 0);
        int parent = _parent[block];
        if (parent >= 0 && (!_published[parent] || _parentGeneration[block] != _generation[parent])) parent = PrefixBlockState.Orphaned;
        return new PrefixBlockState(true, _lruNode[block] != null, _root[block], parent, _hits[block]);
    }

    /// <summary>
    /// Starts the empty <paramref name="sequence"/> with the longest run of cached blocks that matches
    /// <paramref name="tokens"/>, then the leading rows of the cached block that continues it furthest, leaving at least
    /// one token to compute (its logits are needed). With local layers kept apart, only as far as every local group
    /// still holds the window before the hit's end. The blocks are shared, not copied. Returns the positions adopted;
    /// <paramref name="cursor"/> counts the whole blocks among them.
    /// </summary>
    public int Adopt(PagedKvSequence sequence, ReadOnlySpan<int> tokens, ref PrefixCursor cursor)
    {
        if (sequence.Pool != _pool) throw new ArgumentException("the sequence's blocks are in another pool", nameof(sequence));
        if (sequence.Length != 0 || cursor.Blocks != 0) throw new InvalidOperationException("only an empty sequence adopts a cached prefix");
        int size = _pool.BlockSize, limit = Math.Max(0, tokens.Length - 1), full = limit / size;
        ulong hash = MatchInRam(tokens, full, cursor.Root);
        if (_localOf != null) hash = KeepLocallyHeld(cursor.Root);
        int inRam = _matched.Count;
        if (_tiers != null && inRam < full) FetchFromTiers(tokens, full, cursor.Root, ref hash);
        int blocks = _matched.Count, whole = blocks * size;
        var (partial, rows) = _partialHits && whole < limit
            ? LongestContinuation(tokens[whole..limit], blocks == 0 ? -1 : _matched[blocks - 1], cursor.Root, hash)
            : (-1, 0);
        if (rows > 0) _matched.Add(partial);
        // The continuing block's rows only where its window is held too.
        if (rows > 0 && _localOf != null && !WindowHeld(_matched.Count, whole + rows))
        {
            _matched.RemoveAt(blocks);
            rows = 0;
        }
        Interlocked.Add(ref _queriedTokens, _partialHits ? limit : (long)full * size);
        Interlocked.Add(ref _hitTokens, (long)whole + rows);
        Interlocked.Add(ref _tierHitTokens, (long)(blocks - inRam) * size);
        if (_matched.Count == 0) return 0;
        foreach (int b in _matched) _hits[b]++;
        if (_localOf != null) sequence.AdoptPrefix(_matched, LocalTables(whole + rows), whole + rows);
        else sequence.AdoptPrefix(_matched, whole + rows);
        // The holds FetchFromTiers took are the sequence's now.
        if (_tiers != null && inRam < full) for (int i = 0; i < blocks; i++) _pool.Release(_matched[i]);
        cursor.Blocks = blocks;
        cursor.LastHash = hash;
        return whole + rows;
    }

    /// <summary>
    /// Cuts <see cref="_matched"/> (whole blocks) to the run a hit can take with local layers kept apart
    /// (<see cref="LocallyHeldRun"/>); returns the chain's hash after it.
    /// </summary>
    private ulong KeepLocallyHeld(ulong root)
    {
        int held = LocallyHeldRun();
        _matched.RemoveRange(held, _matched.Count - held);
        return held == 0 ? root : _hash[_matched[held - 1]];
    }

    /// <summary>Each local group's table for <see cref="_matched"/> adopted to <paramref name="length"/>: freed before the window it reads.</summary>
    private List<int>[] LocalTables(int length)
    {
        int first = _pool.FirstLocalBlock(length);
        var local = new List<int>[_localGroups];
        for (int g = 0; g < _localGroups; g++)
        {
            local[g] = new List<int>(_matched.Count);
            for (int i = 0; i < _matched.Count; i++) local[g].Add(i < first ? PagedWindow.Freed : _localOf![_matched[i] * _localGroups + g]);
        }
        return local;
    }

    /// <summary>How many of <see cref="_matched"/>'s whole blocks a hit can take: the most whose end's window every local group still holds.</summary>
    private int LocallyHeldRun()
    {
        for (int blocks = _matched.Count; blocks > 0; blocks--)
            if (WindowHeld(blocks, blocks * _pool.BlockSize)) return blocks;
        return 0;
    }

    /// <summary>Whether every local group holds the blocks of the first <paramref name="blocks"/> matched that the window at <paramref name="end"/> reads.</summary>
    private bool WindowHeld(int blocks, int end)
    {
        for (int i = _pool.FirstLocalBlock(end); i < blocks; i++)
            for (int g = 0; g < _localGroups; g++)
                if (_localOf![_matched[i] * _localGroups + g] < 0) return false;
        return true;
    }

    /// <summary>
    /// Marks the cached blocks a request waiting for admission will adopt (what <see cref="Adopt"/> would take of
    /// <paramref name="tokens"/> from RAM under <paramref name="root"/>) as just used, its first block last, and
    /// returns how many. The scheduler calls it for its queue, the head last: multi-turn chat comes back in a cycle,
    /// and plain least-recently-used order evicts exactly the prefix of the conversation that runs next (a queued
    /// turn's history is older than the blocks of the turns running now). This way the pool takes a block first from
    /// prefixes no queued request wants, then from the deepest blocks of the request that will run last.
    /// </summary>
    public int Refresh(ReadOnlySpan<int> tokens, ulong root)
    {
        int size = _pool.BlockSize, limit = Math.Max(0, tokens.Length - 1);
        ulong hash = MatchInRam(tokens, limit / size, root);
        // Only as far as a hit could take them (see Adopt).
        if (_localOf != null) hash = KeepLocallyHeld(root);
        int blocks = _matched.Count, whole = blocks * size;
        if (_partialHits && whole < limit && LongestContinuation(tokens[whole..limit], blocks == 0 ? -1 : _matched[blocks - 1], root, hash) is ( >= 0 and var partial, _))
            _matched.Add(partial);
        for (int i = _matched.Count - 1; i >= 0; i--)
        {
            MarkUsed(_matched[i]);
            // The local blocks of the window the hit ends with, which it needs as much as its global blocks.
            if (_localOf != null && i >= _pool.FirstLocalBlock(_matched.Count * size))
                for (int g = 0; g < _localGroups; g++) MarkUsed(_localOf[_matched[i] * _localGroups + g]);
        }
        return _matched.Count;
    }

    /// <summary>Moves a cached block to the most recently used end (nothing for one somebody holds, or for -1: none).</summary>
    private void MarkUsed(int block)
    {
        if (block >= 0 && _lruNode[block] is { } node)
        {
            _lru.Remove(node);
            _lru.AddLast(node);
        }
    }

    /// <summary>
    /// The cached block after <paramref name="parent"/> (a published block or a tail) whose leading rows match the most
    /// of <paramref name="rest"/>, and how many: (-1, 0) when none matches a token.
    /// </summary>
    private (int Block, int Rows) LongestContinuation(ReadOnlySpan<int> rest, int parent, ulong root, ulong parentHash)
    {
        if (!_children.TryGetValue(parentHash, out var candidates)) return (-1, 0);
        int size = _pool.BlockSize, best = -1, most = 0;
        foreach (int b in candidates)
        {
            if (!_published[b] || _root[b] != root || _parent[b] != parent || (parent >= 0 && _parentGeneration[b] != _generation[parent])) continue;
            int n = Math.Min(_rows[b], rest.Length);
            int common = rest[..n].CommonPrefixLength(_tokens.AsSpan(b * size, n));
            if (common > most) (best, most) = (b, common);
        }
        return (best, most);
    }

    /// <summary>Fills <paramref name="block"/> with the <paramref name="index"/>th block of a chain, if the source holds it intact.</summary>
    private delegate bool BlockSource(int index, KvTierBlock.Identity id, ReadOnlySpan<int> tokens, int block);

    private void FetchFromTiers(ReadOnlySpan<int> tokens, int full, ulong root, ref ulong hash) =>
        Extend(tokens, full, root, ref hash, (_, id, blockTokens, block) => _tiers!.TryFetch(id, blockTokens, _pool, block));

    /// <summary>
    /// Extends <see cref="_matched"/> with the blocks after it that <paramref name="source"/> holds, each filled into a
    /// fresh block and published, until the first one it does not give back intact. Every matched block is held on
    /// return (the caller lets go once it is done): a block found in RAM that nobody holds must not be evicted to make
    /// room for the ones after it.
    /// </summary>
    private void Extend(ReadOnlySpan<int> tokens, int full, ulong root, ref ulong hash, BlockSource source)
    {
        foreach (int b in _matched) _pool.Retain(b);
        int size = _pool.BlockSize;
        for (int b = _matched.Count; b < full; b++)
        {
            var blockTokens = tokens.Slice(b * size, size);
            ulong next = HashFunction(hash, blockTokens);
            if (!_pool.TryAllocate(out int block)) break;
            if (!source(b, new KvTierBlock.Identity(_layoutId, root, hash, next), blockTokens, block))
            {
                _pool.Release(block);
                break;
            }
            PublishBlock(block, b == 0 ? -1 : _matched[b - 1], root, hash, blockTokens);
            _matched.Add(block);
            hash = next;
        }
    }

    /// <summary>The run of cached blocks holding <paramref name="tokens"/>' first <paramref name="full"/> blocks, into <see cref="_matched"/>; returns the chain's hash after it.</summary>
    private ulong MatchInRam(ReadOnlySpan<int> tokens, int full, ulong root)
    {
        int size = _pool.BlockSize;
        _matched.Clear();
        ulong hash = root;
        for (int b = 0; b < full; b++)
        {
            int parent = b == 0 ? -1 : _matched[b - 1];
            if (!TryFind(parent, root, hash, tokens.Slice(b * size, size), out int block, out ulong next)) break;
            _matched.Add(block);
            hash = next;
        }
        return hash;
    }

    /// <summary>
    /// Encodes (<see cref="KvTierBlock"/>) the cached blocks holding the leading full blocks of
    /// <paramref name="tokens"/> under <paramref name="salt"/>, as far as they are in RAM, handing each to
    /// <paramref name="write"/>; returns how many. What <see cref="Import"/> takes back.
    /// </summary>
    public int Export(ReadOnlySpan<int> tokens, string? salt, Action<byte[]> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        RefuseLocalGroups();
        int size = _pool.BlockSize;
        ulong root = Begin(salt).Root, hash = root;
        MatchInRam(tokens, tokens.Length / size, root);
        foreach (int block in _matched)
        {
            var blockTokens = _tokens.AsSpan(block * size, size);
            ulong next = _hash[block];
            var value = new byte[KvTierBlock.EncodedLength(size, checked((int)_pool.BytesPerBlock))];
            KvTierBlock.Encode(new KvTierBlock.Identity(_layoutId, root, hash, next), blockTokens, _pool, block, value);
            write(value);
            hash = next;
        }
        return _matched.Count;
    }

    /// <summary>
    /// Puts blocks <see cref="Export"/> gave for <paramref name="tokens"/> back into the cache (published, nobody
    /// holding them, so later requests adopt them), under <paramref name="salt"/>; blocks already in RAM are kept.
    /// Returns the positions now cached. A value that is not intact or not the block its place in the chain names
    /// (another model, KV type, salt or tokens) stops the import there with <see cref="InvalidDataException"/>.
    /// </summary>
    public int Import(ReadOnlySpan<int> tokens, string? salt, IReadOnlyList<byte[]> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        RefuseLocalGroups();
        int size = _pool.BlockSize, full = Math.Min(tokens.Length / size, values.Count), blockBytes = checked((int)_pool.BytesPerBlock);
        ulong root = Begin(salt).Root;
        ulong hash = MatchInRam(tokens, full, root);
        string? refused = null;
        Extend(tokens, full, root, ref hash, (index, id, blockTokens, block) =>
        {
            if (KvTierBlock.TryDecode(values[index], id, blockTokens, blockBytes, out var bytes, out string? problem, _pool.ValuesAreKeys))
            {
                _pool.CopyBlockIn(bytes, block);
                return true;
            }
            refused = $"block {index} of {values.Count}: {problem}";
            return false;
        });
        int cached = _matched.Count;
        foreach (int b in _matched) _pool.Release(b);
        if (refused != null)
            throw new InvalidDataException($"saved prefix refused at {refused} (saved by another model, KV type or tenant, or corrupted); {cached * size} positions restored before it");
        return cached * size;
    }

    /// <summary>A prefix file holds whole-layer blocks: a pool that keeps local layers apart has none.</summary>
    private void RefuseLocalGroups()
    {
        if (_localOf != null)
            throw new NotSupportedException($"a saved prefix holds blocks of every layer: with {_pool.Config.Architecture}'s local layers kept apart ({_pool.LayerGroups}) there are none; keep every position of the local layers (--swa-full) to save or restore prefixes");
    }

    /// <summary>
    /// Publishes every full block of <paramref name="sequence"/> past <paramref name="cursor"/>, chained to the one
    /// before it; <paramref name="tokens"/> are the sequence's tokens (at least its length). A partial block, the one
    /// still being written, is never published.
    /// </summary>
    public void Publish(PagedKvSequence sequence, ReadOnlySpan<int> tokens, ref PrefixCursor cursor)
    {
        if (sequence.Pool != _pool) throw new ArgumentException("the sequence's blocks are in another pool", nameof(sequence));
        if (tokens.Length < sequence.Length) throw new ArgumentException($"{tokens.Length} tokens for a sequence of {sequence.Length} positions", nameof(tokens));
        if (!sequence.Policy.KeepsEverything)
            throw new InvalidOperationException($"a sequence with cache policy '{sequence.Policy}' cannot publish prefix-cache blocks: past its window they depend on the window");
        int size = _pool.BlockSize, full = sequence.Length / size;
        var table = sequence.BlockTable;
        while (cursor.Blocks < full)
        {
            int b = cursor.Blocks;
            cursor.LastHash = PublishBlock(table[b], ParentOf(cursor, table, b), cursor.Root, cursor.LastHash, tokens.Slice(b * size, size));
            if (_localOf != null) PublishLocal(sequence, b);
            cursor.Blocks++;
        }
    }

    /// <summary>
    /// Publishes the local groups' blocks of table entry <paramref name="b"/> with its global block, where that block is
    /// published and lacks them (a block adopted from the cache has its own, or had them evicted; a local block already
    /// let go behind the window is not there to publish).
    /// </summary>
    private void PublishLocal(PagedKvSequence sequence, int b)
    {
        int global = sequence.BlockTable[b];
        if (!_published[global]) return;
        for (int g = 0; g < _localGroups; g++)
        {
            int at = global * _localGroups + g, local = sequence.GroupTable(g + 1)[b];
            if (_localOf![at] >= 0 || local == PagedWindow.Freed || _published[local]) continue;
            _localOf[at] = local;
            _localAt![local] = at;
            _published[local] = true;
            _rows[local] = _pool.BlockSize;
        }
    }

    /// <summary>
    /// Keeps the last, partial block of <paramref name="sequence"/> (its tail: the rows past its whole blocks) as a
    /// cached block that a later lookup can take the leading rows of, once the sequence is done with it: it is finishing
    /// or giving up its blocks to be recomputed. Call after <see cref="Publish"/> and before releasing the blocks; the
    /// tail is never written again (a sequence sharing it copies it first). Does nothing when there is no tail, when a
    /// cached block already holds its tokens, or under a format whose rows are quantized in groups.
    /// </summary>
    public void PublishTail(PagedKvSequence sequence, ReadOnlySpan<int> tokens, ref PrefixCursor cursor)
    {
        if (sequence.Pool != _pool) throw new ArgumentException("the sequence's blocks are in another pool", nameof(sequence));
        if (!sequence.Policy.KeepsEverything)
            throw new InvalidOperationException($"a sequence with cache policy '{sequence.Policy}' cannot publish prefix-cache blocks: past its window they depend on the window");
        int size = _pool.BlockSize, full = sequence.Length / size, rows = sequence.Length % size;
        if (!_partialHits || rows == 0 || cursor.Blocks != full) return;
        int block = sequence.BlockTable[full];
        if (_published[block]) return; // adopted as a partial hit and not written since
        var tail = tokens.Slice(full * size, rows);
        int parent = ParentOf(cursor, sequence.BlockTable, full);
        if (LongestContinuation(tail, parent, cursor.Root, cursor.LastHash).Rows == rows) return;
        PublishBlock(block, parent, cursor.Root, cursor.LastHash, tail);
        if (_localOf != null) PublishLocal(sequence, full);
    }

    /// <summary>
    /// The parent of table entry <paramref name="b"/> as published: the block the index holds for the hash before it,
    /// when it holds one. A sequence that computed a prefix another had already published (both prefilled it at once)
    /// owns a duplicate that is not published, and its later blocks, chained to the duplicate, could never be found by
    /// a lookup that walks indexed blocks. -1 for a chain's first block.
    /// </summary>
    private int ParentOf(in PrefixCursor cursor, IReadOnlyList<int> table, int b) =>
        b == 0 ? -1 : _index.TryGetValue(cursor.LastHash, out int indexed) && _published[indexed] ? indexed : table[b - 1];

    /// <summary>
    /// Publishes one block: a full one is indexed by its hash, a tail (fewer tokens than a block) only among its
    /// parent's continuations. A full block whose tokens the cache already holds after the same parent (a sequence
    /// that computed a published prefix again: both prefilled it at once, or greedy decoding wrote the same text) is
    /// not published: nothing could find it that would not find the first, so it goes back to the pool when its
    /// sequence lets go instead of taking a cached block's place (and a branch of the tree) until it is evicted.
    /// </summary>
    private ulong PublishBlock(int block, int parent, ulong root, ulong parentHash, ReadOnlySpan<int> tokens)
    {
        if (_published[block]) return _hash[block];
        ulong h;
        if (tokens.Length < _pool.BlockSize) h = HashFunction(parentHash, tokens);
        else if (TryFind(parent, root, parentHash, tokens, out _, out h)) return h; // TryFind hashed it either way
        tokens.CopyTo(_tokens.AsSpan(block * _pool.BlockSize, tokens.Length));
        _rows[block] = tokens.Length;
        _hash[block] = h;
        _root[block] = root;
        _parentHash[block] = parentHash;
        _parent[block] = parent;
        _parentGeneration[block] = parent < 0 ? 0 : _generation[parent];
        _published[block] = true;
        _hits[block] = 0;
        if (tokens.Length == _pool.BlockSize) _index.TryAdd(h, block);
        if (!_children.TryGetValue(parentHash, out var siblings)) _children[parentHash] = siblings = [];
        // Tails this block covers (a conversation's next turn took one, copied it on its first write, and has now
        // filled or cut the copy) go first when the pool needs a block: a lookup takes this block's rows instead.
        foreach (int sibling in siblings)
            if (_lruNode[sibling] is { } node && node != _lru.First && Covers(block, sibling))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
            }
        siblings.Add(block);
        return h;
    }

    /// <summary>
    /// Whether <paramref name="block"/> holds every token of <paramref name="tail"/> and more, after the same parent:
    /// then no lookup needs the tail (<see cref="LongestContinuation"/> takes the longest match), and it only fills a
    /// block that another prefix could use.
    /// </summary>
    private bool Covers(int block, int tail)
    {
        if (block == tail || !_published[block] || !_published[tail] || _rows[tail] >= _rows[block]) return false;
        if (_root[block] != _root[tail] || _parentHash[block] != _parentHash[tail] || _parent[block] != _parent[tail]
            || _parentGeneration[block] != _parentGeneration[tail]) return false;
        int size = _pool.BlockSize;
        return _tokens.AsSpan(block * size, _rows[tail]).SequenceEqual(_tokens.AsSpan(tail * size, _rows[tail]));
    }

    /// <summary>Whether a published block after the same parent covers <paramref name="tail"/> (<see cref="Covers"/>).</summary>
    private bool Superseded(int tail)
    {
        if (_rows[tail] == _pool.BlockSize || !_children.TryGetValue(_parentHash[tail], out var siblings)) return false;
        foreach (int sibling in siblings)
            if (Covers(sibling, tail)) return true;
        return false;
    }

    /// <summary>The cached block holding <paramref name="tokens"/> right after <paramref name="parent"/>, confirmed, not just hashed.</summary>
    private bool TryFind(int parent, ulong root, ulong parentHash, ReadOnlySpan<int> tokens, out int block, out ulong hash)
    {
        hash = HashFunction(parentHash, tokens);
        if (_index.TryGetValue(hash, out block) && _published[block] && _rows[block] == _pool.BlockSize && _root[block] == root && _parent[block] == parent
            && (parent < 0 || _parentGeneration[block] == _generation[parent])
            && _tokens.AsSpan(block * _pool.BlockSize, _pool.BlockSize).SequenceEqual(tokens))
            return true;
        block = -1;
        return false;
    }

    int ICachedBlocks.Count => _lru.Count;

    bool ICachedBlocks.Keep(int block)
    {
        if (!_published[block]) return false;
        // Least recently used first out, but a tail that a longer block now covers before anything else.
        _lruNode[block] = Superseded(block) ? _lru.AddFirst(block) : _lru.AddLast(block);
        return true;
    }

    bool ICachedBlocks.Reuse(int block)
    {
        if (_lruNode[block] is not { } node) return false;
        _lru.Remove(node);
        _lruNode[block] = null;
        return true;
    }

    bool ICachedBlocks.TryEvict(out int block)
    {
        if (_lru.First is not { } oldest)
        {
            block = -1;
            return false;
        }
        block = oldest.Value;
        _lru.RemoveFirst();
        _lruNode[block] = null;
        Interlocked.Increment(ref _evictedBlocks);
        if (_localAt != null && _localAt[block] >= 0)
        {
            // A local block alone: hits ending where its window is read get shorter.
            ForgetLocal(block);
            return true;
        }
        if (_localOf != null) ForgetLocalBlocksOf(block);
        // Tiers hold whole blocks, found by hash; a tail is only ever reused from RAM.
        if (_rows[block] == _pool.BlockSize)
            _tiers?.TryQueue(new KvTierBlock.Identity(_layoutId, _root[block], _parentHash[block], _hash[block]),
                _tokens.AsSpan(block * _pool.BlockSize, _pool.BlockSize), _pool, block);
        if (_children.TryGetValue(_parentHash[block], out var siblings) && siblings.Remove(block) && siblings.Count == 0) _children.Remove(_parentHash[block]);
        _published[block] = false;
        _generation[block]++;
        if (_index.TryGetValue(_hash[block], out int indexed) && indexed == block) _index.Remove(_hash[block]);
        return true;
    }

    /// <summary>Unpublishes a local block: its global block no longer has it.</summary>
    private void ForgetLocal(int local)
    {
        _localOf![_localAt![local]] = -1;
        _localAt[local] = -1;
        _published[local] = false;
    }

    /// <summary>
    /// Unpublishes the local blocks of a global block being evicted (no lookup reaches them without it): one nobody
    /// holds goes back to the pool, one a sequence holds is that sequence's until it lets go.
    /// </summary>
    private void ForgetLocalBlocksOf(int global)
    {
        for (int g = 0; g < _localGroups; g++)
        {
            int local = _localOf![global * _localGroups + g];
            if (local < 0) continue;
            ForgetLocal(local);
            if (_lruNode[local] is not { } node) continue;
            _lru.Remove(node);
            _lruNode[local] = null;
            Interlocked.Increment(ref _evictedBlocks);
            _pool.FreeCached(local);
        }
    }
}
