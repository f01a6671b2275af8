using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// A cache's state under a score-based policy (<see cref="KvEviction.HeavyHitters"/>, <see cref="KvEviction.SnapKv"/>):
/// one <see cref="ScoredHead"/> per layer and KV head, each keeping its own positions in its own slots of the
/// storage's rows. A step of T tokens needs T free slots per head on top of those held; the storage grows only when
/// a step needs more (H2O holds at most B + T rows, SnapKV the longest prefill plus what decoding appended).
/// </summary>
internal sealed class ScoredHeads
{
    private readonly ScoredHead[] _heads;
    private readonly int _kvHeads;

    public KvCachePolicy Policy { get; }
    public int Budget { get; }
    /// <summary>Query heads per KV head (GQA): each one's probabilities count.</summary>
    public int GroupSize { get; }

    public ScoredHeads(ModelConfig config, KvCachePolicy policy, int maxLength)
    {
        if (!policy.EvictsByScore) throw new ArgumentException($"cache policy '{policy}' does not evict by score", nameof(policy));
        policy.Validate(maxLength);
        Policy = policy;
        Budget = policy.EvictionBudget!.Value;
        GroupSize = config.GroupSize;
        _kvHeads = config.KvHeadCount;
        _heads = new ScoredHead[config.LayerCount * _kvHeads];
        for (int i = 0; i < _heads.Length; i++) _heads[i] = new ScoredHead();
    }

    public ScoredHead Of(int layer, int kvHead) => _heads[layer * _kvHeads + kvHead];

    /// <summary>
    /// SnapKV: the prompt being prefilled, positions [<see cref="PromptStart"/>, PromptEnd): compressed once, when its
    /// last token has run, by the votes of its last O queries, whatever steps it is split into. Null: each step of
    /// several tokens is a prompt of its own (<c>kvsharp eval</c>'s chunked prefill).
    /// </summary>
    public int? PromptEnd { get; private set; }
    public int PromptStart { get; private set; }

    /// <summary>Declares positions [<paramref name="start"/>, <paramref name="end"/>) one prompt (<see cref="PromptEnd"/>).</summary>
    public void MarkPrompt(int start, int end)
    {
        if (start < 0 || end < start) throw new ArgumentOutOfRangeException(nameof(end), end, $"a prompt from position {start} must end at or after it");
        PromptStart = start;
        PromptEnd = end;
    }

    /// <summary>Positions each head holds (every head holds as many).</summary>
    public int Held => _heads[0].Count;

    /// <summary>Rows the storage needs for a step of <paramref name="tokens"/> tokens on top of what is held, or 0 if it has them.</summary>
    public int RowsNeeded(int tokens)
    {
        int most = 0;
        foreach (var h in _heads) most = Math.Max(most, tokens - h.FreeSlots);
        return most;
    }

    /// <summary>The storage now has rows [from, to): their slots are free in every head.</summary>
    public void AddSlots(int from, int to)
    {
        foreach (var h in _heads) h.AddSlots(from, to);
    }

    /// <summary>Slots for positions [length, newLength) in every head.</summary>
    public void Reserve(int length, int newLength)
    {
        foreach (var h in _heads) h.Reserve(length, newLength - length);
    }

    /// <summary>
    /// Checks and applies a truncation to <paramref name="length"/> of a sequence of <paramref name="held"/> tokens. H2O:
    /// every query added its attention to the scores, which cannot be taken back, so only 0 (a reset) or the length
    /// itself; SnapKV: back to its last compression (what decode appended after it goes), not below.
    /// </summary>
    public void Truncate(int length, int held)
    {
        if (length == held) return;
        if (length > 0)
        {
            if (Policy.Eviction == KvEviction.HeavyHitters)
                throw new InvalidOperationException(
                    $"cannot truncate a cache with policy '{Policy}' from {held} tokens to {length}: every query added its attention to the scores that chose what is held, and that cannot be taken back (truncate to 0, or Reset)");
            int compressed = _heads[0].CompressedAt;
            if (length < compressed)
                throw new InvalidOperationException(
                    $"cannot truncate a cache with policy '{Policy}' from {held} tokens to {length}: it compressed the sequence at {compressed} tokens by the votes of queries from {length} on (truncate to {compressed} or more, to 0, or Reset)");
        }
        if (length < PromptEnd) PromptEnd = null;
        foreach (var h in _heads)
        {
            h.DropFrom(length);
            if (length == 0) h.CompressedAt = 0;
        }
    }
}
