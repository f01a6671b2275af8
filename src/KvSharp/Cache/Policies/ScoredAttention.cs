using System.Runtime.CompilerServices;
using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Cache.Policies;

/// <summary>
/// Attention of one layer and KV head under a score-based policy, with its bookkeeping; the kernel
/// (<see cref="CausalAttention"/>) runs unchanged over exactly the held rows (<see cref="HeldKvRows{TRows, TKey, TValue}"/>).
/// The probabilities the policies score by come from a second pass over the held rows that only these policies run
/// (<see cref="Probabilities{TRows, TKey, TValue}"/>), so the full and window paths pay nothing for them.
/// A head's queries must come in order, a whole step's block at once (<see cref="Models.IKvStore.AttendsWholeChunks"/>):
/// each query's eviction depends on the ones before it.
/// <list type="bullet">
/// <item>H2O: the queries that still see every position before them run as one block; each later one runs alone,
/// after the lightest position outside the recent ones is evicted so it attends to exactly B (itself included). Each
/// query's probabilities, summed over the group's query heads, are then added to the scores of what it attended to.
/// So a prefill chunk gives the bits of decoding its tokens one by one.</item>
/// <item>SnapKV: the block attends to everything held (the new positions included, causally). If the step has more
/// than one token and leaves more than B held, its last O queries vote: their probabilities over the positions before
/// them, summed over those queries and the group, max-pooled over 7 neighbours (clipped at the ends); the B - O
/// earlier positions with the most votes stay, with the O observed ones.</item>
/// </list>
/// </summary>
internal static class ScoredAttention
{
    /// <summary>SnapKV's max-pooling kernel (the paper's 7): a vote counts for its 3 neighbours on each side.</summary>
    public const int PoolKernel = 7;

    public static void Attend<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHeads heads,
        int layer, int kvHead, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        var head = heads.Of(layer, kvHead);
        if (block.FirstPosition != head.Next)
            throw new InvalidOperationException(
                $"cache policy '{heads.Policy}' attends a layer's queries in order, a step at once: expected position {head.Next}, got {block.FirstPosition}");
        if (heads.Policy.Eviction == KvEviction.HeavyHitters) HeavyHitters<TRows, TKey, TValue>(block, rows, heads, head, scale, scratch);
        else SnapKv<TRows, TKey, TValue>(block, rows, heads, head, scale, scratch);
        head.Next = block.FirstPosition + block.Tokens;
        head.EndStep();
    }

    private static void HeavyHitters<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHeads heads, ScoredHead head,
        float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int first = block.FirstPosition, budget = heads.Budget, width = block.GroupSize * block.HeadDim;
        // Positions below B: nothing was evicted yet, so each such query sees every position before it.
        int seeAll = Math.Clamp(budget - first, 0, block.Tokens);
        if (seeAll > 0)
        {
            for (int t = 0; t < seeAll; t++) head.Append(first + t);
            int logicalFirst = head.Count - seeAll;
            var whole = new QueryBlock(block.Queries, block.Output, seeAll, block.Stride, logicalFirst, block.GroupSize, block.HeadDim);
            CausalAttention.Attend<HeldKvRows<TRows, TKey, TValue>, TKey, TValue>(whole, new HeldKvRows<TRows, TKey, TValue>(rows, head.Slots), scale, scratch);
            for (int t = 0; t < seeAll; t++)
                AddAttention<TRows, TKey, TValue>(block.Queries.Slice(t * block.Stride, width), block.GroupSize, rows, head, logicalFirst + t + 1, scale);
        }
        for (int t = seeAll; t < block.Tokens; t++)
        {
            int position = first + t;
            head.Append(position);
            head.EvictLightest(budget, heads.Policy.Recent, position);
            var one = new QueryBlock(block.Queries.Slice(t * block.Stride, width), block.Output.Slice(t * block.Stride, width), 1, width,
                head.Count - 1, block.GroupSize, block.HeadDim);
            CausalAttention.Attend<HeldKvRows<TRows, TKey, TValue>, TKey, TValue>(one, new HeldKvRows<TRows, TKey, TValue>(rows, head.Slots), scale, scratch);
            AddAttention<TRows, TKey, TValue>(one.Queries, block.GroupSize, rows, head, head.Count, scale);
        }
    }

    /// <summary>Adds one token's attention (each query head of the group in turn) over held [0, length) to the scores.</summary>
    private static void AddAttention<TRows, TKey, TValue>(ReadOnlySpan<float> queries, int group, scoped in TRows rows, ScoredHead head,
        int length, float scale)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int headDim = queries.Length / group;
        Span<float> probabilities = head.Work(length), scores = head.Scores[..length];
        for (int g = 0; g < group; g++)
        {
            Probabilities<TRows, TKey, TValue>(queries.Slice(g * headDim, headDim), rows, head.Slots[..length], scale, probabilities);
            for (int j = 0; j < length; j++) scores[j] += probabilities[j];
        }
    }

    private static void SnapKv<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHeads heads, ScoredHead head,
        float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int first = block.FirstPosition, tokens = block.Tokens, budget = heads.Budget;
        for (int t = 0; t < tokens; t++) head.Append(first + t);
        int held = head.Count, logicalFirst = held - tokens;
        var whole = new QueryBlock(block.Queries, block.Output, tokens, block.Stride, logicalFirst, block.GroupSize, block.HeadDim);
        CausalAttention.Attend<HeldKvRows<TRows, TKey, TValue>, TKey, TValue>(whole, new HeldKvRows<TRows, TKey, TValue>(rows, head.Slots), scale, scratch);
        // Decode steps append without eviction, as in the paper: only a prefill is compressed.
        if (tokens == 1 || held <= budget) return;

        int observed = Math.Min(heads.Policy.Observation, tokens), prefix = held - observed, headDim = block.HeadDim;
        Span<float> votes = head.Work(held), pooled = head.Pooled(held);
        // Each observing query's probabilities land in `pooled` (free until pooling), then add to its votes.
        votes[..prefix].Clear();
        for (int t = tokens - observed; t < tokens; t++)
            for (int g = 0; g < block.GroupSize; g++)
            {
                int length = logicalFirst + t + 1;
                Probabilities<TRows, TKey, TValue>(block.Queries.Slice(t * block.Stride + g * headDim, headDim), rows, head.Slots[..length], scale,
                    pooled[..length]);
                for (int j = 0; j < prefix; j++) votes[j] += pooled[j];
            }
        const int reach = PoolKernel / 2;
        for (int j = 0; j < prefix; j++)
        {
            float most = float.NegativeInfinity;
            for (int i = Math.Max(0, j - reach); i <= Math.Min(prefix - 1, j + reach); i++) most = Math.Max(most, votes[i]);
            pooled[j] = most;
        }
        head.KeepTopVoted(prefix, budget - observed, pooled, votes);
        head.CompressedAt = first + tokens;
    }

    /// <summary>
    /// probabilities[j] = softmax over the held rows (logical 0..) of query · key_j x scale: the scores exactly as the
    /// kernel computes them (<see cref="KeyScores.Dot(ReadOnlySpan{float}, ReadOnlySpan{float})"/> on the floats the
    /// key rows stand for), then exp(s - max) / sum in float.
    /// </summary>
    public static void Probabilities<TRows, TKey, TValue>(ReadOnlySpan<float> query, scoped in TRows rows, ReadOnlySpan<int> slots, float scale,
        Span<float> probabilities)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int headDim = query.Length;
        var keys = new KvPlanes(ref Unsafe.AsRef(in rows.KeyOrigin), ref Unsafe.AsRef(in rows.KeySideOrigin));
        Span<float> key = headDim <= 512 ? stackalloc float[headDim] : new float[headDim];
        Span<nint> row = stackalloc nint[1];
        float max = float.NegativeInfinity;
        for (int j = 0; j < slots.Length; j++)
        {
            rows.RowOffsets(slots[j], row);
            TKey.ReadRow(keys, row[0], headDim, ref key[0]);
            float s = KeyScores.Dot(query, key) * scale;
            probabilities[j] = s;
            max = Math.Max(max, s);
        }
        float sum = 0;
        for (int j = 0; j < slots.Length; j++) sum += probabilities[j] = MathF.Exp(probabilities[j] - max);
        float inverse = 1 / sum;
        for (int j = 0; j < slots.Length; j++) probabilities[j] *= inverse;
    }
}
