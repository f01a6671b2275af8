using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Policies;

/// <summary>
/// Attention of a block of one sequence's queries under a window policy. The queries that still see every position
/// before them (a prefix of the block) run as one block over the rows as they are; each later query sees its own
/// window, so it runs alone over the sinks and its window (<see cref="KeptKvRows{TRows, TKey, TValue}"/>), the sink keys
/// first rotated to its offset (<see cref="SinkKeys"/>). Either way the kernel runs unchanged over exactly the kept
/// rows, and a query's result does not depend on the block it came in: a prefill chunk that wraps the ring gives
/// the bits of decoding its tokens one by one.
/// </summary>
internal static class PolicyAttention
{
    public static void Attend<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, KeptSlots slots, SinkKeys? sinks,
        int layer, int kvHead, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        if (sinks == null)
        {
            AttendKept<TRows, TKey, TValue>(block, rows, slots, null, layer, kvHead, scale, scratch);
            return;
        }
        lock (sinks.LockOf(layer, kvHead)) AttendKept<TRows, TKey, TValue>(block, rows, slots, sinks, layer, kvHead, scale, scratch);
    }

    private static void AttendKept<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, KeptSlots slots, SinkKeys? sinks,
        int layer, int kvHead, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int first = block.FirstPosition, seeAll = Math.Clamp(slots.Sinks + slots.Window - first, 0, block.Tokens);
        if (seeAll > 0)
        {
            sinks?.RotateTo(layer, kvHead, 0, first + seeAll);
            var whole = seeAll == block.Tokens ? block
                : new QueryBlock(block.Queries, block.Output, seeAll, block.Stride, first, block.GroupSize, block.HeadDim) { SinkLogits = block.SinkLogits };
            CausalAttention.Attend<KeptKvRows<TRows, TKey, TValue>, TKey, TValue>(whole, new KeptKvRows<TRows, TKey, TValue>(rows, slots, slots.Sinks), scale, scratch);
        }
        int width = block.GroupSize * block.HeadDim, last = slots.Sinks + slots.Window - 1;
        for (int t = seeAll; t < block.Tokens; t++)
        {
            int windowStart = slots.WindowStart(first + t);
            // Sinks at 0..S-1 and the window right after them: the key at windowStart sits at S, so the sinks move by
            // windowStart - S to keep their distance to every window key (and the query) what the policy assigns.
            sinks?.RotateTo(layer, kvHead, windowStart - slots.Sinks, slots.Sinks);
            var one = new QueryBlock(block.Queries.Slice(t * block.Stride, width), block.Output.Slice(t * block.Stride, width), 1, width,
                last, block.GroupSize, block.HeadDim) { SinkLogits = block.SinkLogits };
            CausalAttention.Attend<KeptKvRows<TRows, TKey, TValue>, TKey, TValue>(one, new KeptKvRows<TRows, TKey, TValue>(rows, slots, windowStart), scale, scratch);
        }
    }
}
