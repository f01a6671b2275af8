using System.Threading.Channels;
using KvSharp.Cache;
using KvSharp.Cache.Policies;

namespace KvSharp.Engine;

/// <summary>One generation request for an <see cref="LlmEngine"/>.</summary>
public sealed record EngineRequest
{
    public required IReadOnlyList<int> PromptTokens { get; init; }
    public GenerationOptions Options { get; init; } = new();
    /// <summary>Tenant salt for the prefix cache: requests with different salts never share blocks.</summary>
    public string? CacheSalt { get; init; }
    /// <summary>Parallel samples: the prompt is computed once and its blocks shared by every sample.</summary>
    public int SampleCount { get; init; } = 1;
    /// <summary>
    /// Only <see cref="ContextOverflow.Stop"/>: the engine refuses <see cref="ContextOverflow.Shift"/> (see
    /// <see cref="LlmEngine.Submit"/>); an <see cref="InferenceSession"/> shifts.
    /// </summary>
    public ContextOverflow ContextOverflow { get; init; } = ContextOverflow.Stop;
    /// <summary>
    /// Which positions this request's cache keeps (<see cref="KvCachePolicy"/>); default <see cref="EngineOptions.CachePolicy"/>.
    /// A request with any policy but full neither reads nor publishes prefix-cache blocks; one with sinks, H2O or SnapKV
    /// takes one sample only.
    /// </summary>
    public KvCachePolicy? CachePolicy { get; init; }
    /// <summary>
    /// Score the prompt (vLLM's prompt_logprobs, OpenAI's echo with logprobs): the log-probability of each prompt token
    /// after the first given those before it, with this many most likely tokens at each place, on
    /// <see cref="RequestHandle.PromptLogprobs"/>. Null: none. Every prompt position's logits are computed, so such a
    /// request adopts no cached prefix blocks (it still publishes its own), and it may ask for 0 tokens to generate.
    /// </summary>
    public int? PromptLogprobs { get; init; }
}

/// <summary>Where a request stands. <see cref="Failed"/>: the forward pass could not compute its step (the model produced
/// NaN or infinity); <see cref="RequestHandle.Error"/> says why, and the engine goes on serving other requests.</summary>
public enum RequestStatus { Waiting, Running, Finished, Cancelled, Rejected, Failed }

/// <summary>
/// A generated token as it is produced: which sample, its id, the text it completed, and its log-probabilities when
/// <see cref="GenerationOptions.TopLogprobs"/> asked for them. Text flushed at the end has id -1 and no logprobs.
/// </summary>
public readonly record struct GeneratedToken(int Sample, int TokenId, string Text, KvSharp.Sampling.TokenLogprobs? Logprobs = null);

/// <summary>Tracks a submitted request: streamed tokens, final outputs, completion, cancellation.</summary>
public sealed class RequestHandle
{
    private readonly Channel<GeneratedToken> _stream = Channel.CreateUnbounded<GeneratedToken>(new() { SingleWriter = true });
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _cancelRequested;

    public long Id { get; }
    public EngineRequest Request { get; }
    public RequestStatus Status { get; internal set; } = RequestStatus.Waiting;
    /// <summary>Generated token ids per sample.</summary>
    public IReadOnlyList<int>[] OutputTokens { get; }
    private readonly System.Text.StringBuilder[] _text;

    /// <summary>Generated text per sample (stop strings removed).</summary>
    public string[] OutputText => Array.ConvertAll(_text, t => t.ToString());
    public FinishReason[] FinishReasons { get; }
    /// <summary>Why the request was rejected or failed.</summary>
    public string? Error { get; internal set; }
    /// <summary>Which part of the request a rejection blames (<see cref="RequestPart.None"/> when none alone, or not rejected).</summary>
    public RequestPart RejectedPart { get; internal set; }
    /// <summary>
    /// With <see cref="EngineRequest.PromptLogprobs"/>: one entry per prompt token, null for the first (nothing comes
    /// before it); all filled by the time the first token is produced, or the request finishes. Null otherwise.
    /// </summary>
    public IReadOnlyList<KvSharp.Sampling.TokenLogprobs?>? PromptLogprobs => _promptLogprobs;
    private readonly KvSharp.Sampling.TokenLogprobs?[]? _promptLogprobs;
    private int _promptLogprobsFilled;

    /// <summary>Some prompt position's logprobs are still to be computed.</summary>
    internal bool PromptLogprobsPending => _promptLogprobs != null && _promptLogprobsFilled < _promptLogprobs.Length - 1;

    /// <summary>Records the logprobs of the prompt token at <paramref name="position"/> (from 1), once: a recomputed prompt gives the same.</summary>
    internal void SetPromptLogprobs(int position, KvSharp.Sampling.TokenLogprobs logprobs)
    {
        if (_promptLogprobs![position] != null) return;
        _promptLogprobs[position] = logprobs;
        _promptLogprobsFilled++;
    }

    /// <summary>Prompt tokens found in the prefix cache.</summary>
    public int CachedPromptTokens { get; internal set; }
    /// <summary>When the first token was produced, measured from submission.</summary>
    public TimeSpan? TimeToFirstToken { get; internal set; }
    internal System.Diagnostics.Stopwatch Clock { get; } = System.Diagnostics.Stopwatch.StartNew();

    internal RequestHandle(long id, EngineRequest request)
    {
        Id = id;
        Request = request;
        int n = Math.Max(1, request.SampleCount);
        OutputTokens = new IReadOnlyList<int>[n];
        for (int i = 0; i < n; i++) OutputTokens[i] = new List<int>();
        _text = new System.Text.StringBuilder[n];
        for (int i = 0; i < n; i++) _text[i] = new();
        FinishReasons = new FinishReason[n];
        LiveSamples = n;
        if (request.PromptLogprobs != null) _promptLogprobs = new KvSharp.Sampling.TokenLogprobs?[request.PromptTokens.Count];
    }

    /// <summary>Tokens as they are generated, for streaming; completes when the request ends.</summary>
    public ChannelReader<GeneratedToken> Stream => _stream.Reader;

    /// <summary>Completes when every sample has finished (or the request was cancelled or rejected).</summary>
    public Task Completion => _done.Task;

    public bool IsDone => Status is RequestStatus.Finished or RequestStatus.Cancelled or RequestStatus.Rejected or RequestStatus.Failed;

    /// <summary>
    /// Stops the request without waiting for the engine's step in progress. A request no step has taken yet, or one
    /// cancelled between steps, completes as <see cref="RequestStatus.Cancelled"/> and frees its KV blocks before this
    /// returns; one the step in progress is computing completes as that step ends (it may still get that step's token,
    /// or finish in it). Await <see cref="Completion"/> to know it has ended.
    /// </summary>
    public void Cancel()
    {
        _cancelRequested = true;
        OnCancel?.Invoke();
    }

    internal Action? OnCancel { get; set; }

    internal bool CancelRequested => _cancelRequested;

    /// <summary>Samples not finished yet (the engine's bookkeeping).</summary>
    internal int LiveSamples { get; set; }

    /// <param name="token">The sampled id, or -1 for text held back until generation ended (no token of its own).</param>
    internal void Emit(int sample, int token, string text, KvSharp.Sampling.TokenLogprobs? logprobs = null)
    {
        if (token >= 0) ((List<int>)OutputTokens[sample]).Add(token);
        _text[sample].Append(text);
        TimeToFirstToken ??= Clock.Elapsed;
        _stream.Writer.TryWrite(new GeneratedToken(sample, token, text, logprobs));
    }

    internal void Complete(RequestStatus status, string? error = null)
    {
        Status = status;
        Error ??= error;
        _stream.Writer.TryComplete();
        _done.TrySetResult();
    }
}
