namespace KvSharp.Evaluation;

/// <summary>How <see cref="KvEvaluator"/> walks a text.</summary>
public sealed record EvalOptions
{
    /// <summary>Tokens per window (BOS included); each window runs in a fresh cache. Default: the model's trained context length.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Tokens of the text per reported segment perplexity (<see cref="EvalRun.SegmentPerplexity"/>).</summary>
    public int SegmentTokens { get; init; } = 256;

    /// <summary>Tokens per forward pass while teacher-forcing a window (a batched prefill of this many at a time).</summary>
    public int ChunkTokens { get; init; } = 64;

    /// <summary>
    /// The last tokens of each window run one at a time, as decode steps, and are timed: the decode rate with the cache
    /// at its longest (<see cref="EvalRun.DecodeTokensPerSecond"/>). Per-row storage makes this change no logit.
    /// </summary>
    public int DecodeTokens { get; init; } = 32;

    internal void Validate()
    {
        if (ContextLength is < 2) throw new ArgumentOutOfRangeException(nameof(ContextLength), ContextLength, "an evaluation window needs at least 2 tokens");
        if (SegmentTokens < 1) throw new ArgumentOutOfRangeException(nameof(SegmentTokens), SegmentTokens, "segments need at least 1 token");
        if (ChunkTokens < 1) throw new ArgumentOutOfRangeException(nameof(ChunkTokens), ChunkTokens, "chunks need at least 1 token");
        if (DecodeTokens < 0) throw new ArgumentOutOfRangeException(nameof(DecodeTokens), DecodeTokens, "decode tokens must be >= 0");
    }
}
