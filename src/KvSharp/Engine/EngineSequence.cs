using KvSharp.Cache.Paged;

namespace KvSharp.Engine;

/// <summary>
/// One sequence the scheduler runs: a sample of a request, its tokens (prompt and generated), and its KV blocks
/// while it holds any. A preempted sequence keeps its tokens and gives up its blocks; it is recomputed later.
/// </summary>
internal sealed class EngineSequence
{
    public required RequestHandle Handle { get; init; }
    public required int Sample { get; init; }
    /// <summary>Admission order: set when the scheduler takes the request from its inbox (forks take their parent's).</summary>
    public long Arrival { get; set; }
    public required List<int> Tokens { get; init; }
    public required int PromptLength { get; init; }
    public required GenerationStepper Stepper { get; init; }
    /// <summary>How far this sequence's blocks are in the prefix cache (a field: the cache advances it by reference).</summary>
    public required PrefixCursor Prefix;

    /// <summary>Whether the inbox still holds this request, the scheduler took it, or its cancel withdrew it (<see cref="SubmissionInbox"/>).</summary>
    public int InboxState;

    public PagedKvSequence? Kv { get; set; }
    /// <summary>When this sequence last produced a token (a Stopwatch timestamp; 0 before its first), for inter-token latency.</summary>
    public long LastTokenAt;
    public bool Finished { get; set; }
    /// <summary>Times this sequence gave up its blocks for lack of room (the inspector tells preempted from new).</summary>
    public int Preemptions;

    /// <summary>Tokens whose K/V are not in the cache yet (the prompt's rest, or the last sampled token).</summary>
    public int Pending => Tokens.Count - (Kv?.Length ?? 0);
    /// <summary>The prompt has been computed at least once, so this sequence is decoding.</summary>
    public bool IsDecoding => Stepper.Generated > 0;
}
