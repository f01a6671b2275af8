using KvSharp.Attention;
using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// A <see cref="PagedKvSequence"/> under a window policy. Positions keep their block-table addresses (no ring: a block
/// is the unit that comes and goes), and a block wholly outside what any coming query sees — past the sinks' blocks
/// and before the next query's window — goes back to the pool, its table entry left as <see cref="Freed"/>. So a
/// sequence holds the sinks' blocks plus about W / BlockSize + 1 more, however long it grows.
/// </summary>
internal sealed class PagedWindow : IKeyRowWriter
{
    /// <summary>A block-table entry whose block went back to the pool.</summary>
    public const int Freed = -1;

    private readonly KvBlockPool _pool;
    private readonly Func<ReadOnlySpan<int>> _blocks;

    public KeptSlots Slots { get; }
    public SinkKeys? Sinks { get; }

    public PagedWindow(KvBlockPool pool, KvCachePolicy policy, int maxLength, RotaryEmbedding? rope, Func<ReadOnlySpan<int>> blocks)
    {
        int window = policy.Window ?? throw new ArgumentException("the full policy keeps every position: it needs no window", nameof(policy));
        policy.Validate(maxLength);
        _pool = pool;
        _blocks = blocks;
        Slots = new KeptSlots(policy.Sinks, window, int.MaxValue);
        Sinks = SinkKeys.For(pool.Config, policy, rope, this);
    }

    /// <summary>First block index that may still be read by a query at <paramref name="position"/> or later (sink blocks aside).</summary>
    public int FirstNeededBlock(int position) => Slots.WindowStart(position) / _pool.BlockSize;

    /// <summary>Sink blocks: those holding a position below the sinks' end; never freed.</summary>
    public int SinkBlocks => (Slots.Sinks + _pool.BlockSize - 1) / _pool.BlockSize;

    /// <summary>Frees the blocks no query from <paramref name="length"/> on reads.</summary>
    public void ReleaseOutside(List<int> blocks, int length) => Release(_pool, blocks, SinkBlocks, FirstNeededBlock(length));

    /// <summary>Gives entries [<paramref name="from"/>, <paramref name="end"/>) of a block table back to the pool, leaving them <see cref="Freed"/>.</summary>
    public static void Release(KvBlockPool pool, List<int> blocks, int from, int end)
    {
        end = Math.Min(end, blocks.Count);
        for (int b = from; b < end; b++)
            if (blocks[b] != Freed)
            {
                pool.Release(blocks[b]);
                blocks[b] = Freed;
            }
    }

    public void WriteKey(int layer, int kvHead, int position, ReadOnlySpan<float> row) => _pool.Rows.WriteKeyRow(_blocks(), layer, kvHead, position, row);

    public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) =>
        _pool.Rows.AttendKept(_blocks(), layer, kvHead, block, scale, scratch, Slots, Sinks);
}
