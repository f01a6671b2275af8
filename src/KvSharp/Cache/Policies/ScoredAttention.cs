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
/// <item>SnapKV: the block attends to everything held (the new positions included, causally). The prompt's last O
/// queries vote as they run (<see cref="ScoredHeads.PromptEnd"/>: the marked prompt, else a step of several tokens):
/// their probabilities over the positions before them, summed over those queries and the group. When the prompt's
/// last token has run and more than B are held, the votes are max-pooled over 7 neighbours (clipped at the ends) and
/// the B - O earlier positions with the most stay, with the O observed ones.</item>
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
            int logicalFirst = AttendAppended<TRows, TKey, TValue>(Part(block, 0, seeAll), rows, head, scale, scratch);
            for (int t = 0; t < seeAll; t++)
            {
                int length = logicalFirst + t + 1;
                AddAttention<TRows, TKey, TValue>(block.Queries.Slice(t * block.Stride, width), block.GroupSize, rows, head, length, scale, head.Scores[..length]);
            }
        }
        for (int t = seeAll; t < block.Tokens; t++)
        {
            int position = first + t;
            head.Append(position);
            head.EvictLightest(budget, heads.Policy.Recent, position);
            var one = new QueryBlock(block.Queries.Slice(t * block.Stride, width), block.Output.Slice(t * block.Stride, width), 1, width,
                head.Count - 1, block.GroupSize, block.HeadDim) { SinkLogits = block.SinkLogits };
            CausalAttention.Attend<HeldKvRows<TRows, TKey, TValue>, TKey, TValue>(one, new HeldKvRows<TRows, TKey, TValue>(rows, head.Slots), scale, scratch);
            AddAttention<TRows, TKey, TValue>(one.Queries, block.GroupSize, rows, head, head.Count, scale, head.Scores);
        }
    }

    /// <summary>
    /// Adds one token's attention (each query head of the group in turn) over held [0, <paramref name="length"/>) to
    /// <paramref name="into"/>, whose first into.Length positions it counts: H2O's scores, or SnapKV's votes over the
    /// positions before its observation window.
    /// </summary>
    private static void AddAttention<TRows, TKey, TValue>(ReadOnlySpan<float> queries, int group, scoped in TRows rows, ScoredHead head,
        int length, float scale, Span<float> into)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int headDim = queries.Length / group;
        Span<float> probabilities = head.Work(length);
        for (int g = 0; g < group; g++)
        {
            Probabilities<TRows, TKey, TValue>(queries.Slice(g * headDim, headDim), rows, head.Slots[..length], scale, probabilities);
            for (int j = 0; j < into.Length; j++) into[j] += probabilities[j];
        }
    }

    private static void SnapKv<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHeads heads, ScoredHead head,
        float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int first = block.FirstPosition, tokens = block.Tokens;
        // The prompt [start, end) this step runs (part of): the one marked, else the step itself if it has several
        // tokens; a step past it appends without eviction, as decoding does in the paper.
        int start = first, end = tokens > 1 ? first + tokens : first;
        if (heads.PromptEnd is int marked)
        {
            start = heads.PromptStart;
            end = marked;
        }
        int inPrompt = Math.Clamp(end - first, 0, tokens);
        if (inPrompt > 0) PromptPart<TRows, TKey, TValue>(Part(block, 0, inPrompt), rows, heads, head, start, end, scale, scratch);
        if (inPrompt < tokens) AttendAppended<TRows, TKey, TValue>(Part(block, inPrompt, tokens - inPrompt), rows, head, scale, scratch);
    }

    /// <summary>Tokens [<paramref name="from"/>, from + <paramref name="count"/>) of a block, at their own positions.</summary>
    private static QueryBlock Part(scoped in QueryBlock block, int from, int count) =>
        new(block.Queries.Slice(from * block.Stride), block.Output.Slice(from * block.Stride), count, block.Stride, block.FirstPosition + from,
            block.GroupSize, block.HeadDim);

    /// <summary>Holds a block's positions and attends it to everything held (the new positions causally); returns its first logical position.</summary>
    private static int AttendAppended<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHead head, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        for (int t = 0; t < block.Tokens; t++) head.Append(block.FirstPosition + t);
        int logicalFirst = head.Count - block.Tokens;
        var whole = new QueryBlock(block.Queries, block.Output, block.Tokens, block.Stride, logicalFirst, block.GroupSize, block.HeadDim) { SinkLogits = block.SinkLogits };
        CausalAttention.Attend<HeldKvRows<TRows, TKey, TValue>, TKey, TValue>(whole, new HeldKvRows<TRows, TKey, TValue>(rows, head.Slots), scale, scratch);
        return logicalFirst;
    }

    /// <summary>
    /// Runs a block of the prompt [<paramref name="start"/>, <paramref name="end"/>): its queries in the observation
    /// window (the last O of the prompt) add their votes, and the block that ends the prompt compresses it. Nothing is
    /// evicted before the end, so held positions from the prompt's start on keep their logical places between steps.
    /// </summary>
    private static void PromptPart<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, ScoredHeads heads, ScoredHead head,
        int start, int end, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int first = block.FirstPosition, tokens = block.Tokens, budget = heads.Budget, headDim = block.HeadDim;
        int logicalFirst = AttendAppended<TRows, TKey, TValue>(block, rows, head, scale, scratch);
        int held = head.Count, observeFrom = Math.Max(start, end - heads.Policy.Observation), observed = end - observeFrom;
        // Logical index of the first observed position: every position after it, up to this block's end, is held.
        int prefix = held - (first + tokens - observeFrom);
        Span<float> votes = observeFrom < first + tokens ? head.Votes(prefix) : default;
        for (int t = Math.Max(0, observeFrom - first); t < tokens; t++)
        {
            if (first + t == observeFrom) votes.Clear();
            AddAttention<TRows, TKey, TValue>(block.Queries.Slice(t * block.Stride, block.GroupSize * headDim), block.GroupSize, rows, head,
                logicalFirst + t + 1, scale, votes);
        }
        // A prompt of one token is a decode step; one that fits the budget keeps everything.
        if (first + tokens != end || end - start < 2 || held <= budget) return;

        Span<float> pooled = head.Pooled(prefix);
        const int reach = PoolKernel / 2;
        for (int j = 0; j < prefix; j++)
        {
            float most = float.NegativeInfinity;
            for (int i = Math.Max(0, j - reach); i <= Math.Min(prefix - 1, j + reach); i++) most = Math.Max(most, votes[i]);
            pooled[j] = most;
        }
        head.KeepTopVoted(prefix, budget - observed, pooled, head.Work(prefix));
        head.CompressedAt = end;
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
