namespace KvSharp.Tokenization;

/// <summary>A piece of the text being tokenized, [Start, Start + Length), linked to its neighbours.</summary>
internal struct MergeSymbol
{
    public int Start;
    public int Length; // 0 once merged into its left neighbour
    public int Prev;
    public int Next;
}

/// <summary>Two adjacent symbols that may merge, with their combined length when queued (which spots stale entries).</summary>
internal readonly record struct MergeCandidate(int Left, int Right, int Size);

/// <summary>How a tokenizer ranks a merge: it queues the pair with its priority, or not at all if no such merge exists.</summary>
internal interface IMergeRanker
{
    void TryQueue(MergeSymbol[] symbols, PriorityQueue<MergeCandidate, ulong> queue, int left, int right);
}

/// <summary>
/// The merge loop shared by the SentencePiece (by score) and byte-level BPE (by rank) tokenizers, as in llama.cpp's
/// llm_tokenizer_spm/bpe: queue every adjacent pair, then repeatedly merge the best queued pair and queue the pairs it
/// forms with its neighbours. Only the ranking differs between the two.
/// </summary>
internal static class SymbolMerges
{
    /// <summary>Merges the first <paramref name="count"/> symbols (linked 0 → count - 1) until no queued pair is left.</summary>
    public static void Run<TRanker>(MergeSymbol[] symbols, int count, PriorityQueue<MergeCandidate, ulong> queue, scoped ref TRanker ranker)
        where TRanker : IMergeRanker, allows ref struct
    {
        queue.Clear();
        for (int i = 1; i < count; i++) ranker.TryQueue(symbols, queue, i - 1, i);
        while (queue.TryDequeue(out var pair, out _))
        {
            ref MergeSymbol left = ref symbols[pair.Left];
            ref MergeSymbol right = ref symbols[pair.Right];
            // Stale entry: a side was merged away or grew since the pair was queued (its text would differ).
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != pair.Size) continue;
            left.Length += right.Length;
            right.Length = 0;
            left.Next = right.Next;
            if (right.Next >= 0) symbols[right.Next].Prev = pair.Left;
            ranker.TryQueue(symbols, queue, left.Prev, pair.Left);
            ranker.TryQueue(symbols, queue, pair.Left, left.Next);
        }
    }
}
