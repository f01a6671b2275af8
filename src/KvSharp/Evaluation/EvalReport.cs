using KvSharp.Cache;

namespace KvSharp.Evaluation;

/// <summary>What one cache configuration cost and kept, against the exact cache, over the whole text.</summary>
public sealed record EvalRun
{
    public required string Policy { get; init; }
    public required KvElementType KeyType { get; init; }
    public required KvElementType ValueType { get; init; }
    /// <summary>exp(mean negative log-likelihood of each scored token).</summary>
    public required double Perplexity { get; init; }
    /// <summary>Mean over scored positions of KL(exact cache's next-token distribution ‖ this one's), in nats.</summary>
    public required double MeanKl { get; init; }
    /// <summary>Fraction of scored positions (0..1) whose most likely next token is the exact cache's.</summary>
    public required double Top1Agreement { get; init; }
    public required long KvBytesPerToken { get; init; }
    /// <summary>The most bytes the cache held at once (positions held x bytes per token).</summary>
    public required long PeakKvBytes { get; init; }
    /// <summary>Single-token decode steps per second at the end of each window (timings; see <see cref="EvalOptions.DecodeTokens"/>).</summary>
    public required double DecodeTokensPerSecond { get; init; }
    /// <summary>Perplexity of the scored tokens in each segment of <see cref="EvalReport.SegmentTokens"/> text tokens (NaN for a segment with none).</summary>
    public required IReadOnlyList<double> SegmentPerplexity { get; init; }
}

/// <summary>The result of <see cref="KvEvaluator.Run"/>.</summary>
public sealed record EvalReport
{
    /// <summary>Tokens of the text.</summary>
    public required int Tokens { get; init; }
    /// <summary>Tokens whose prediction was scored: every token of the text but BOS markers.</summary>
    public required int ScoredTokens { get; init; }
    public required int ContextLength { get; init; }
    public required int Windows { get; init; }
    public required int SegmentTokens { get; init; }
    public required IReadOnlyList<EvalRun> Runs { get; init; }
}
