namespace KvSharp.Cache.Paged;

/// <summary>
/// Automatic prefix caching over a <see cref="KvBlockPool"/>, in one place (nano-vllm keeps it in its block manager):
/// each full block a sequence computes is published under a hash chained over every token before it and seeded
/// with the model's identity and the tenant's salt; a new sequence adopts the longest run of published blocks that
/// matches its tokens instead of computing them. A hash only proposes a block: its chain root, its parent and its
/// tokens must match, so a collision costs a recompute, never a wrong answer. Published blocks nobody holds stay
/// cached, least recently used first out when the pool needs a fresh block. Not thread-safe: the scheduler owns it.
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
    private readonly int[] _parent;
    private readonly int[] _tokens;
    // Bumped when a block is evicted (its contents will change); a child remembers its parent's, so it can never
    // match under a parent block that was reused for another prefix, even when hashes collide.
    private readonly int[] _generation;
    private readonly int[] _parentGeneration;
    // Published blocks that nobody holds, least recently used first.
    private readonly LinkedList<int> _lru = new();
    private readonly LinkedListNode<int>?[] _lruNode;
    private readonly List<int> _matched = [];
    private long _queriedTokens, _hitTokens;

    /// <param name="pool">The blocks to cache; a pool has at most one prefix cache.</param>
    /// <param name="modelIdentity">What identifies the model that computes the blocks: blocks of another model never match.</param>
    /// <param name="hash">The block hash (tests substitute a colliding one); default <see cref="PrefixHasher.Hash"/>.</param>
    public PrefixCache(KvBlockPool pool, string modelIdentity, BlockHashFunction? hash = null)
    {
        _pool = pool;
        _modelIdentity = modelIdentity;
        HashFunction = hash ?? PrefixHasher.Hash;
        int blocks = pool.BlockCount;
        _hash = new ulong[blocks];
        _published = new bool[blocks];
        _root = new ulong[blocks];
        _parent = new int[blocks];
        _tokens = new int[blocks * pool.BlockSize];
        _generation = new int[blocks];
        _parentGeneration = new int[blocks];
        _lruNode = new LinkedListNode<int>?[blocks];
        pool.Attach(this);
    }

    public KvBlockPool Pool => _pool;
    public BlockHashFunction HashFunction { get; }
    /// <summary>Published blocks nobody holds: reused on a hit, evicted when the pool needs a block.</summary>
    public int CachedBlocks => _lru.Count;
    /// <summary>Prompt tokens looked up (whole blocks only, short of the last token).</summary>
    public long QueriedTokens => Interlocked.Read(ref _queriedTokens);
    /// <summary>Prompt tokens found.</summary>
    public long HitTokens => Interlocked.Read(ref _hitTokens);

    /// <summary>A cursor at the start of the chain for this model and <paramref name="salt"/> (null: no tenant).</summary>
    public PrefixCursor Begin(string? salt) => new(PrefixHasher.Seed(_modelIdentity, salt));

    public bool IsPublished(int block) => _published[block];

    /// <summary>
    /// Starts the empty <paramref name="sequence"/> with the longest run of cached blocks that matches
    /// <paramref name="tokens"/>, leaving at least one token to compute (its logits are needed). The blocks are
    /// shared, not copied. Returns the positions adopted.
    /// </summary>
    public int Adopt(PagedKvSequence sequence, ReadOnlySpan<int> tokens, ref PrefixCursor cursor)
    {
        if (sequence.Pool != _pool) throw new ArgumentException("the sequence's blocks are in another pool", nameof(sequence));
        if (sequence.Length != 0 || cursor.Blocks != 0) throw new InvalidOperationException("only an empty sequence adopts a cached prefix");
        int size = _pool.BlockSize, full = Math.Max(0, tokens.Length - 1) / size;
        _matched.Clear();
        ulong hash = cursor.Root;
        for (int b = 0; b < full; b++)
        {
            int parent = b == 0 ? -1 : _matched[b - 1];
            if (!TryFind(parent, cursor.Root, hash, tokens.Slice(b * size, size), out int block, out ulong next)) break;
            _matched.Add(block);
            hash = next;
        }
        Interlocked.Add(ref _queriedTokens, (long)full * size);
        Interlocked.Add(ref _hitTokens, (long)_matched.Count * size);
        if (_matched.Count == 0) return 0;
        sequence.AdoptPrefix(_matched);
        cursor.Blocks = _matched.Count;
        cursor.LastHash = hash;
        return _matched.Count * size;
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
        int size = _pool.BlockSize, full = sequence.Length / size;
        var table = sequence.BlockTable;
        while (cursor.Blocks < full)
        {
            int b = cursor.Blocks;
            // The parent is the block the index holds for the parent's hash, when it holds one: a sequence that computed
            // a prefix another had already published (both prefilled it at once) owns a duplicate that is not indexed,
            // and its later blocks, chained to the duplicate, could never be found by a lookup that walks indexed blocks.
            int parent = b == 0 ? -1 : _index.TryGetValue(cursor.LastHash, out int indexed) && _published[indexed] ? indexed : table[b - 1];
            cursor.LastHash = PublishBlock(table[b], parent, cursor.Root, cursor.LastHash, tokens.Slice(b * size, size));
            cursor.Blocks++;
        }
    }

    /// <summary>Publishes one full block; the first block published under a hash keeps the index entry.</summary>
    private ulong PublishBlock(int block, int parent, ulong root, ulong parentHash, ReadOnlySpan<int> tokens)
    {
        ulong h = HashFunction(parentHash, tokens);
        if (_published[block]) return _hash[block];
        tokens.CopyTo(_tokens.AsSpan(block * _pool.BlockSize, _pool.BlockSize));
        _hash[block] = h;
        _root[block] = root;
        _parent[block] = parent;
        _parentGeneration[block] = parent < 0 ? 0 : _generation[parent];
        _published[block] = true;
        _index.TryAdd(h, block);
        return h;
    }

    /// <summary>The cached block holding <paramref name="tokens"/> right after <paramref name="parent"/>, confirmed, not just hashed.</summary>
    private bool TryFind(int parent, ulong root, ulong parentHash, ReadOnlySpan<int> tokens, out int block, out ulong hash)
    {
        hash = HashFunction(parentHash, tokens);
        if (_index.TryGetValue(hash, out block) && _published[block] && _root[block] == root && _parent[block] == parent
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
        _lruNode[block] = _lru.AddLast(block);
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
        _published[block] = false;
        _generation[block]++;
        if (_index.TryGetValue(_hash[block], out int indexed) && indexed == block) _index.Remove(_hash[block]);
        return true;
    }
}
