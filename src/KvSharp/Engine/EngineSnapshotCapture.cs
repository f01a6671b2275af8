using System.Buffers;
using KvSharp.Cache.Paged;

namespace KvSharp.Engine;

/// <summary>
/// Takes an <see cref="EngineSnapshotDetail"/> in two halves: <see cref="Copy"/> runs under the scheduler's lock and
/// only copies (refcounts, each block's prefix-cache state, the sequences and the totals: a few arrays), so a step
/// waits microseconds at most; <see cref="Build"/> runs after the lock is released and derives the map and the tree.
/// The per-block arrays are rented and returned by Build: a large pool's would otherwise land on the large object
/// heap ten times a second while a page is open, and the collections that follow would pause the steps.
/// </summary>
internal sealed class EngineSnapshotCapture
{
    private long _step, _changes;
    private DateTimeOffset _takenAt;
    private EngineSnapshotModel _model = null!;
    private int _blockCount;
    private int[] _refCounts = [];
    private PrefixBlockState[] _prefix = [];
    private EngineSnapshotSequence[] _sequences = [];
    private EngineSnapshotCounters _counters = null!;
    private EngineSnapshotTier[] _tiers = [];
    private long _bytesPerBlock;
    private string _elementType = "";
    private int _blockSize;
    private long _exactRowsBytes, _exactRowsReservedBytes;

    /// <summary>Copies what the snapshot needs; the caller holds the engine's lock. <paramref name="waiting"/>: the scheduler's queue, then the requests still in its inbox.</summary>
    public static EngineSnapshotCapture Copy(LlmEngine engine, LlmModel model, List<EngineSequence> running, List<EngineSequence> waiting, long changes)
    {
        var pool = engine.Pool;
        var cache = engine.PrefixCache;
        var metrics = engine.Metrics;
        var config = model.Config;
        long perToken = pool.Format.BytesPerToken(config);
        var capture = new EngineSnapshotCapture
        {
            _step = metrics.Steps,
            _changes = changes,
            _takenAt = DateTimeOffset.UtcNow,
            _bytesPerBlock = pool.BytesPerBlock,
            _elementType = pool.Format.Name,
            _blockSize = pool.BlockSize,
            _model = new EngineSnapshotModel(Path.GetFileName(model.Path), config.Architecture,
                config.LayerCount, config.KvHeadCount, config.HeadDim, pool.Format.Name,
                perToken / (2.0 * config.LayerCount * config.KvHeadCount * config.HeadDim), perToken, engine.ContextLength, pool.BlockSize, pool.TotalBytes),
            _blockCount = pool.BlockCount,
            _refCounts = ArrayPool<int>.Shared.Rent(pool.BlockCount),
            _prefix = ArrayPool<PrefixBlockState>.Shared.Rent(pool.BlockCount),
            _exactRowsReservedBytes = engine.Options.ExactRowsBytes(config),
        };
        for (int b = 0; b < pool.BlockCount; b++)
        {
            capture._refCounts[b] = pool.RefCount(b);
            capture._prefix[b] = cache.Describe(b);
        }
        var sequences = new List<EngineSnapshotSequence>(running.Count + waiting.Count);
        foreach (var s in running) if (!s.Finished) sequences.Add(Describe(s, running: true));
        foreach (var s in waiting) if (!s.Finished) sequences.Add(Describe(s, running: false));
        capture._sequences = [.. sequences];
        int holdingExactRows = 0;
        foreach (var s in running) if (!s.Finished && s.Kv != null) holdingExactRows++;
        foreach (var s in waiting) if (!s.Finished && s.Kv != null) holdingExactRows++;
        capture._exactRowsBytes = pool.Format.ExactBytesPerSequence(config) * holdingExactRows;
        long queried = metrics.PrefixQueriedTokens, hit = metrics.PrefixHitTokens;
        capture._counters = new EngineSnapshotCounters(metrics.Steps, metrics.GeneratedTokens, metrics.ComputedTokens, queried, hit,
            queried == 0 ? 0 : (double)hit / queried, metrics.Preemptions, metrics.TokensPerSecond, running.Count, waiting.Count);
        // Lookups run inside steps, so these are the step's; the tiers' writer adds its writes at any moment.
        capture._tiers = EngineSnapshotTier.Of(cache.Tiers);
        return capture;
    }

    private static EngineSnapshotSequence Describe(EngineSequence s, bool running)
    {
        string state = running ? (s.IsDecoding ? "decoding" : "prefill") : (s.Preemptions > 0 ? "preempted" : "queued");
        var h = s.Handle;
        return new EngineSnapshotSequence(h.Id, s.Sample, state, s.PromptLength, h.CachedPromptTokens, s.Stepper.Generated, s.Kv?.Length ?? 0,
            s.Preemptions, s.Kv is { } kv ? [.. kv.BlockTable] : [], h.TimeToFirstToken?.TotalMilliseconds, h.Clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>Derives the cell map, the counts and the prefix tree from the copy (no lock needed); once only.</summary>
    public EngineSnapshotDetail Build()
    {
        try
        {
            return Derive();
        }
        finally
        {
            ArrayPool<int>.Shared.Return(_refCounts);
            ArrayPool<PrefixBlockState>.Shared.Return(_prefix);
            _refCounts = [];
            _prefix = [];
        }
    }

    private EngineSnapshotDetail Derive()
    {
        int count = _blockCount, free = 0, inUse = 0, shared = 0, cached = 0;
        var map = new char[count];
        for (int b = 0; b < count; b++)
        {
            int refs = _refCounts[b];
            char cell = refs > 1 ? EngineSnapshotBlocks.SharedCell
                : refs == 1 ? EngineSnapshotBlocks.InUseCell
                : _prefix[b].Cached ? EngineSnapshotBlocks.CachedCell
                : EngineSnapshotBlocks.FreeCell;
            map[b] = cell;
            switch (cell)
            {
                case EngineSnapshotBlocks.SharedCell: shared++; break;
                case EngineSnapshotBlocks.InUseCell: inUse++; break;
                case EngineSnapshotBlocks.CachedCell: cached++; break;
                default: free++; break;
            }
        }
        var blocks = new EngineSnapshotBlocks(_blockSize, count, free, inUse, shared, cached, _bytesPerBlock, _bytesPerBlock * count,
            _bytesPerBlock * (inUse + shared), _elementType, new string(map), _exactRowsBytes, _exactRowsReservedBytes);
        return new EngineSnapshotDetail(_step, _changes, _takenAt, _model, blocks, _sequences, PrefixTree(), _counters, _tiers);
    }

    /// <summary>
    /// The published blocks as a forest, a run of blocks per node: a block continues its parent's node when it is its
    /// parent's only child and has the same hit count; otherwise it starts a node.
    /// </summary>
    private List<EngineSnapshotPrefixNode> PrefixTree()
    {
        int count = _blockCount;
        var children = ArrayPool<List<int>?>.Shared.Rent(count);
        Array.Clear(children, 0, count);
        try
        {
            return PrefixTree(children);
        }
        finally
        {
            ArrayPool<List<int>?>.Shared.Return(children, clearArray: true);
        }
    }

    private List<EngineSnapshotPrefixNode> PrefixTree(List<int>?[] children)
    {
        int count = _blockCount;
        var starts = new List<int>();
        for (int b = 0; b < count; b++)
        {
            var p = _prefix[b];
            if (!p.Published) continue;
            if (p.Parent >= 0) (children[p.Parent] ??= []).Add(b);
            else starts.Add(b);
        }
        var chains = new Dictionary<ulong, int>();
        var nodes = new List<EngineSnapshotPrefixNode>();
        // Depth-first, preorder, so a node's parent always comes before it; an explicit stack, since chains can be long.
        var stack = new Stack<(int Block, int ParentNode)>();
        for (int i = starts.Count - 1; i >= 0; i--) stack.Push((starts[i], -1));
        var run = new List<int>();
        while (stack.Count > 0)
        {
            var (first, parentNode) = stack.Pop();
            var state = _prefix[first];
            if (!chains.TryGetValue(state.Root, out int chain)) chains[state.Root] = chain = chains.Count;
            run.Clear();
            int block = first, held = 0;
            while (true)
            {
                run.Add(block);
                if (_refCounts[block] > 0) held++;
                if (children[block] is not [int only] || _prefix[only].Hits != state.Hits) break;
                block = only;
            }
            int id = nodes.Count;
            nodes.Add(new EngineSnapshotPrefixNode(id, parentNode, chain, [.. run], state.Hits, held, state.Parent == PrefixBlockState.Orphaned));
            if (children[block] is { } next)
                for (int i = next.Count - 1; i >= 0; i--) stack.Push((next[i], id));
        }
        return nodes;
    }
}
