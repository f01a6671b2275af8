using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Sampling;

namespace KvSharp.Engine;

/// <param name="Running">Sequences running.</param>
/// <param name="Waiting">Sequences waiting (new or preempted), and requests submitted that no step has taken yet.</param>
/// <param name="UsedBlocks">KV blocks held.</param>
/// <param name="FilledPositions">Positions with computed K/V in the running sequences' blocks.</param>
public readonly record struct EngineSnapshot(int Running, int Waiting, int UsedBlocks, long FilledPositions);

/// <summary>
/// Serves many generations from one model in a fixed KV budget: a paged block pool, automatic prefix caching, and
/// continuous batching. Each <see cref="Step"/> admits waiting requests that fit, runs one batched forward over
/// every running sequence's next token plus chunks of pending prompts (within <see cref="EngineOptions.MaxStepTokens"/>),
/// samples, and retires finished sequences. When blocks run out the newest sequences are preempted (their blocks
/// freed, their tokens kept) and recomputed later. Requests may be submitted and cancelled from any thread while
/// one thread drives <see cref="Step"/> (or <see cref="RunAsync"/>), and neither waits for a step in progress:
/// submissions go into an inbox the next step drains at its start, a cancellation during a step is retired as it
/// ends, and the observers (<see cref="Snapshot"/>, the counts) read what the last step published.
/// </summary>
public sealed class LlmEngine : IDisposable
{
    private readonly LlmModel _model;
    private readonly ForwardPass _forward;
    // Held for a whole step; submissions, cancellations and the counts never take it (see SchedulerLock, SubmissionInbox).
    private readonly SchedulerLock _lock;
    private readonly SubmissionInbox _inbox = new();
    private readonly PublishedCounts _published = new();
    private readonly LinkedList<EngineSequence> _waiting = new();
    private readonly List<EngineSequence> _running = [];
    private readonly List<BatchSegment> _segments = [];
    private readonly List<EngineSequence> _segmentOwners = [];
    // Where each segment's tokens start in its sequence (its cache length before the step).
    private readonly List<int> _segmentStarts = [];
    private readonly List<int> _batchTokens = [];
    private readonly List<EngineSequence> _order = [];
    private float[] _logits;
    private long _nextId;
    private long _arrivals;
    private long _changes;

    public EngineOptions Options { get; }
    public KvBlockPool Pool { get; }
    /// <summary>Cached prefix blocks: what requests adopt instead of computing, and what they publish as they go.</summary>
    public PrefixCache PrefixCache { get; }
    public int ContextLength { get; }
    public EngineMetrics Metrics { get; }
    /// <summary>Called in the middle of each step that computes, under the scheduler's lock, just before the forward
    /// pass: tests hold a step here to show what does not wait for it.</summary>
    internal Action? BeforeForward { get; set; }

    public LlmEngine(LlmModel model, EngineOptions? options = null)
    {
        options ??= new EngineOptions();
        options.Validate();
        _model = model;
        Options = options;
        _lock = new SchedulerLock(() =>
        {
            RetireCancelled();
            Publish();
            Interlocked.Increment(ref _changes);
        });
        ContextLength = model.Weights.ContextLengthFor(model.Config, options.ContextLength);
        // A default policy no request of this KV type could run is a startup error, not a refusal of every request.
        if (RefusedPolicy(options.CachePolicy ?? KvCachePolicy.OfModel(model.Config, ContextLength), options.KvFormat) is { } refused)
            throw new ArgumentException(refused, nameof(options));
        var groups = options.LayerGroups(model.Config);
        Pool = options.BlockCount is int blocks
            ? new KvBlockPool(model.Config, options.BlockSize, blocks, options.KvFormat, model.Rope, groups)
            : KvBlockPool.FromBudget(model.Config, options.BlockSize, PoolBudget(model.Config, options), options.KvFormat, model.Rope, groups);
        // Blocks computed by another model must never match: the chains are seeded with what identifies this one. The
        // fingerprint (tensor shapes, types and sampled bytes) and the configuration, not the file's path, so engines on
        // other hosts, or with the model at another path, share blocks through a remote tier.
        PrefixCache = new PrefixCache(Pool, $"{KvSharp.Persistence.ModelFingerprint.Of(model)}|{model.Config}", options.HashFunction,
            options.KvTiers);
        _forward = model.CreateForwardPass(options.MaxStepTokens);
        // One logits row per sequence in a step at most (each segment asks for its last token only); grown if forks
        // of parallel samples push the running count past MaxRunningSequences.
        _logits = new float[options.RunningLimit * model.Config.VocabSize];
        Metrics = new EngineMetrics(this);
    }

    /// <summary>
    /// The part of the KV budget the block pool gets. KIVI's newest rows stay exact floats beside the pool, per running
    /// sequence (<see cref="KvElementFormat.ExactBytesPerSequence"/>), so the budget sets aside room for as many as
    /// can run at once and the pool gets the rest: pool and exact rows together stay within the budget (forks of a
    /// request's parallel samples can briefly run past that count, each holding its own exact rows).
    /// </summary>
    private static long PoolBudget(ModelConfig config, EngineOptions options)
    {
        long exact = options.ExactRowsBytes(config);
        if (exact == 0) return options.KvBudgetBytes;
        long rest = options.KvBudgetBytes - exact;
        long block = options.KvFormat.BytesPerToken(config) * options.BlockSize;
        if (rest < block)
            throw new ArgumentException($"a KV budget of {options.KvBudgetBytes:N0} bytes cannot hold the exact rows of {options.RunningLimit} running {options.KvFormat.Name} " +
                $"sequences ({options.KvFormat.ExactBytesPerSequence(config):N0} bytes each) and a block of {block:N0} bytes: raise the budget or lower the running sequences", nameof(options));
        return rest;
    }

    /// <summary>Sequences waiting: as <see cref="Snapshot"/>'s <see cref="EngineSnapshot.Waiting"/>; never waits for a step.</summary>
    public int WaitingCount => Snapshot().Waiting;
    /// <summary>Sequences running at the end of the last step (or the last cancellation retired between steps); never waits for a step.</summary>
    public int RunningCount => _published.Read().Counts.Running;
    /// <summary>Whether anything is waiting or running, as <see cref="Snapshot"/> counts them; never waits for a step.</summary>
    public bool HasWork => Snapshot() is { Running: > 0 } or { Waiting: > 0 };

    /// <summary>
    /// What the engine holds: sequences, blocks, and the positions those blocks actually fill. Never waits for a step:
    /// the counts are those published at the end of the last step (or of the last cancellation retired between steps),
    /// all from that one moment, except that <see cref="EngineSnapshot.Waiting"/> also counts the requests submitted
    /// since and not cancelled, so a request is seen waiting as soon as <see cref="Submit"/> returns. During a step
    /// the state moves on from these counts (admissions, preemptions, tokens) until the step publishes its own.
    /// </summary>
    public EngineSnapshot Snapshot()
    {
        var (counts, drained) = _published.Read();
        return counts with { Waiting = counts.Waiting + _inbox.Pending(drained) };
    }

    /// <summary>Publishes the counts observers read; under the scheduler's lock, as a step (or a retirement) ends.</summary>
    private void Publish()
    {
        long positions = 0;
        foreach (var s in _running) positions += s.Kv?.Length ?? 0;
        _published.Write(_running.Count, _waiting.Count, Pool.UsedBlocks, positions, _inbox.Drained);
    }

    /// <summary>
    /// Counts what changes the engine's state (submissions, cancellations, steps): an inspector takes a new
    /// <see cref="Inspect"/> only when this moved.
    /// </summary>
    public long Changes => Interlocked.Read(ref _changes);

    /// <summary>
    /// Everything an inspector shows (<see cref="EngineSnapshotDetail"/>), consistent as of the end of a step, plus the
    /// requests submitted since (shown queued). Unlike the counts this waits for a step in progress: it copies every
    /// block's reference count and prefix-cache state and the sequences' block tables, which the step changes as it
    /// goes, and publishing all that at the end of every step would cost each step for a page polled a few times a
    /// second. Submissions, cancellations and the counts do not wait for it either way. The lock is held only while a
    /// few arrays are copied; the map and the prefix tree are built after it is released.
    /// </summary>
    public EngineSnapshotDetail Inspect()
    {
        EngineSnapshotCapture capture;
        using (_lock.Enter())
        {
            // The count first: what it counts is in the lists or the inbox by then, so equal counts mean equal state.
            long changes = Changes;
            List<EngineSequence> waiting = [.. _waiting, .. _inbox.NotTaken];
            capture = EngineSnapshotCapture.Copy(this, _model, _running, waiting, changes);
        }
        return capture.Build();
    }

    /// <summary>
    /// Queues a request without waiting for a step in progress: the next step takes it, in submission order. Requests
    /// that can never fit (longer than the context or the whole KV budget) or that ask for what the engine cannot do
    /// are rejected at once, before this returns, with the reason in <see cref="RequestHandle.Error"/>.
    /// </summary>
    public RequestHandle Submit(EngineRequest request)
    {
        var handle = new RequestHandle(Interlocked.Increment(ref _nextId), request);
        string? problem = Check(request, out var part);
        if (problem != null)
        {
            handle.RejectedPart = part;
            handle.Complete(RequestStatus.Rejected, problem);
            Metrics.Rejected();
            return handle;
        }
        // One sequence per request to start with; parallel samples fork from it once the prompt is computed. Its
        // arrival (admission order) is set when a step takes it from the inbox.
        var seq = NewSequence(handle, 0, [.. request.PromptTokens], 0, PrefixCache.Begin(request.CacheSalt));
        handle.OnCancel = () =>
        {
            // Not taken yet: nothing in the scheduler knows it, so it ends here, as a cancelled request does in a step.
            if (_inbox.Withdraw(seq)) Finish(seq, FinishReason.Stop, cancelled: true);
            else _lock.Cancelled();
            Interlocked.Increment(ref _changes);
        };
        _inbox.Add(seq);
        Interlocked.Increment(ref _changes);
        return handle;
    }

    /// <summary>
    /// Why a request can never run, or null. Reads only what is fixed when the engine is built (options, context,
    /// the pool's size and format, the model), never the scheduler's state, so <see cref="Submit"/> runs it without
    /// the scheduler's lock.
    /// </summary>
    /// <param name="part">The part of the request the problem lies in, when one alone does.</param>
    private string? Check(EngineRequest r, out RequestPart part)
    {
        var o = r.Options;
        part = RequestPart.Prompt;
        if (r.PromptTokens.Count == 0) return "the prompt is empty";
        foreach (int t in r.PromptTokens)
            if ((uint)t >= (uint)_model.Config.VocabSize) return $"token id {t} is outside the vocabulary [0, {_model.Config.VocabSize})";
        part = RequestPart.MaxTokens;
        // Nothing to generate is a request only to score the prompt.
        if (o.MaxTokens < (r.PromptLogprobs == null ? 1 : 0))
            return $"max tokens {o.MaxTokens} must be at least 1 (0 only with prompt logprobs, to score the prompt)";
        part = RequestPart.None;
        if (r.SampleCount < 1) return $"sample count {r.SampleCount} must be at least 1";
        if (r.SampleCount > Options.RunningLimit)
            return $"{r.SampleCount} samples exceed the {Options.RunningLimit} sequences the engine runs at once " +
                   $"(max running sequences {Options.MaxRunningSequences}, max step tokens {Options.MaxStepTokens})";
        if (o.TopLogprobs is < 0) return $"top logprobs {o.TopLogprobs} must be at least 0";
        if (r.PromptLogprobs is < 0) return $"prompt logprobs {r.PromptLogprobs} must be at least 0";
        if (r.ContextOverflow == ContextOverflow.Shift) return ShiftRefused;
        var policy = PolicyOf(r);
        try { policy.Validate(ContextLength); }
        catch (ArgumentException e) { return e.Message; }
        if (r.SampleCount > 1 && policy.SingleSampleReason is { } oneSample)
            return $"cache policy '{policy}' takes one sample per request: {oneSample}";
        if (RefusedPolicy(policy, Pool.Format) is { } refused) return refused;
        try { o.Validate(_model.Config.VocabSize); }
        catch (ArgumentException e) { return e.Message; }
        long total = (long)r.PromptTokens.Count + o.MaxTokens;
        // Too long: the prompt's fault if it leaves no room for one token, else the output's.
        part = r.PromptTokens.Count + 1L > ContextLength ? RequestPart.Prompt : RequestPart.MaxTokens;
        if (total > ContextLength)
            return $"prompt of {r.PromptTokens.Count} tokens + {o.MaxTokens} to generate exceeds the context length of {ContextLength}";
        long blocks = MostBlocksHeld(policy, total);
        part = MostBlocksHeld(policy, r.PromptTokens.Count + 1L) > Pool.BlockCount ? RequestPart.Prompt : RequestPart.MaxTokens;
        if (blocks > Pool.BlockCount)
            return policy.KeepsEverything
                ? $"prompt + output of {total} tokens needs {blocks} KV blocks but the whole budget holds {Pool.BlockCount}"
                : $"prompt + output of {total} tokens with cache policy '{policy}' needs up to {blocks} KV blocks at once but the whole budget holds {Pool.BlockCount}";
        return null;
    }

    /// <summary>Why a sequence of <paramref name="format"/> cannot run under <paramref name="policy"/>, or null when it can.</summary>
    private static string? RefusedPolicy(KvCachePolicy policy, KvElementFormat format) => policy.KeepsEverything || format.RowsStandAlone ? null
        : $"cache policy '{policy}' overwrites or frees rows in place, which {format.Name} quantizes in groups along positions; use full, or another KV type";

    /// <summary>
    /// Most blocks one sequence of <paramref name="total"/> tokens holds at once, so that a request admitted alone
    /// always finishes (else it would preempt itself and restart forever). A full cache holds every position. A window
    /// (<see cref="PagedWindow"/>) frees the blocks before the window only when it reserves the next chunk, and the engine
    /// counts the blocks it needs before that release: so at that moment it holds the sink blocks plus every block
    /// touched from the previous chunk's window start to the end of the new chunk, at most 2 chunks + W - 1 positions.
    /// H2O holds its budget B plus free slots for a step's tokens, never more slots than positions so far; SnapKV holds
    /// its whole prompt until the prompt's end compresses it, and decoding appends: every position, as full.
    /// With local layers kept apart, the global group holds every position and each local group what a window does
    /// (no sinks), from the tile its window starts in.
    /// </summary>
    private long MostBlocksHeld(KvCachePolicy policy, long total)
    {
        long bs = Pool.BlockSize, all = (total + bs - 1) / bs;
        if (Pool.LayerGroups.SplitsLocalLayers) return all + (Pool.LayerGroups.Count - 1) * Pool.MostLocalBlocks(Options.MaxStepTokens, total);
        if (policy.Eviction == KvEviction.HeavyHitters && policy.EvictionBudget is int budget) return Math.Min(all, (budget + Math.Min(Options.MaxStepTokens, total) + bs - 1) / bs);
        if (policy.Window is not int window) return all;
        long chunk = Math.Min(Options.MaxStepTokens, total);
        long span = 2 * chunk + window - 1;
        // Blocks touched by `span` consecutive positions, however they align; the sinks' blocks stay held.
        long windowBlocks = (span - 1 + bs - 1) / bs + 1;
        long sinkBlocks = (policy.Sinks + bs - 1) / bs;
        return Math.Min(all, sinkBlocks + windowBlocks);
    }

    /// <summary>
    /// Why the engine does not shift: a shift rewrites every block after the kept positions, and those blocks may be
    /// shared with the prefix cache and with parallel samples; the shifted rows of layers past the first also depend on
    /// the discarded tokens, so they could never be published under their tokens' hash again. Doing it right needs
    /// copy-on-write of the affected blocks and a sequence that no longer publishes; until then a refusal beats a
    /// subtly wrong shared block.
    /// </summary>
    private const string ShiftRefused =
        "context shift (ContextOverflow.Shift) is not supported for engine requests: it would rewrite KV blocks the prefix cache and parallel samples share; " +
        "shift in an InferenceSession, or give the engine a context that holds the prompt and MaxTokens";

    private EngineSequence NewSequence(RequestHandle handle, int sample, List<int> tokens, long arrival, PrefixCursor prefix)
    {
        var o = handle.Request.Options;
        var sampler = new Sampler(o.Sampling with { Seed = o.Sampling.Seed + (ulong)sample }, _model.Config.VocabSize);
        return new EngineSequence
        {
            Handle = handle,
            Sample = sample,
            Arrival = arrival,
            Tokens = tokens,
            PromptLength = handle.Request.PromptTokens.Count,
            Stepper = new GenerationStepper(_model.Tokenizer, o, sampler, ContextLength, skipLeadingSpace: false),
            Prefix = prefix,
        };
    }

    /// <summary>Runs steps until nothing is waiting or running.</summary>
    public void RunUntilIdle()
    {
        while (Step()) { }
    }

    /// <summary>
    /// Drives the engine on a background loop until cancelled; always ends with OperationCanceledException. Sleeps
    /// while there is nothing to do and wakes when a request is submitted.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellation)
    {
        while (true)
        {
            // Checked on every pass, so the loop ends the same way whether cancellation came during a step or a wait.
            cancellation.ThrowIfCancellationRequested();
            // A step that finds nothing has drained the inbox first; a request submitted after that releases the wait.
            if (!Step()) await _inbox.WaitAsync(cancellation).ConfigureAwait(false);
        }
    }

    /// <summary>One scheduling iteration. Returns false when there was nothing to do.</summary>
    public bool Step()
    {
        using var held = _lock.Enter();
        try
        {
            return StepHeld();
        }
        finally
        {
            Publish();
        }
    }

    private bool StepHeld()
    {
        // Requests cancelled before this point never compute: withdrawn ones never leave the inbox, and those
        // cancelled after a step took them are retired right below.
        while (_inbox.TryTake(out var submitted))
        {
            submitted.Arrival = ++_arrivals;
            _waiting.AddLast(submitted);
        }
        RetireCancelled();
        Admit();
        RefreshQueuedPrefixes();
        if (!BuildBatch()) return _waiting.Count > 0 || _running.Count > 0;
        // Counted as the step ends, still under the lock: an inspection (taken under it) sees a count and the state it counts.
        using var counted = new ChangeCounted(this);
        int rows = 0;
        foreach (var segment in _segments) rows += segment.LogitRows;
        rows *= _model.Config.VocabSize;
        if (_logits.Length < rows) _logits = new float[rows];
        BeforeForward?.Invoke();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            _forward.Forward(CollectionsMarshal.AsSpan(_batchTokens), CollectionsMarshal.AsSpan(_segments), _logits);
        }
        catch (NonFiniteActivationsException e)
        {
            // The step's activations cannot be told apart per sequence, so every request in it fails, with the
            // reason; their blocks (holding this step's unusable K/V) go back to the pool and the engine serves on.
            foreach (var seq in _segmentOwners) Fail(seq, e.Message);
            _running.RemoveAll(static s => s.Finished);
            return true;
        }
        // Publish before sampling: a sequence that finishes this step releases its blocks, and the blocks it
        // completed should stay cached for the next turn.
        PublishFullBlocks();
        int produced = SampleAndAdvance();
        Metrics.StepDone(_batchTokens.Count, produced, clock.Elapsed);
        _running.RemoveAll(s => s.Finished);
        return true;
    }

    private void RetireCancelled()
    {
        // Every step passes here: no allocation unless something was cancelled.
        foreach (var s in _running)
            if (s.Handle.CancelRequested) Finish(s, FinishReason.Stop, cancelled: true);
        _running.RemoveAll(static s => s.Finished);
        for (var node = _waiting.First; node != null;)
        {
            var next = node.Next;
            if (node.Value.Handle.CancelRequested)
            {
                Finish(node.Value, FinishReason.Stop, cancelled: true);
                _waiting.Remove(node);
            }
            node = next;
        }
    }

    /// <summary>
    /// Moves waiting sequences to running, oldest first, while their blocks fit; one whose coming prompt blocks a
    /// running sequence is computing right now is passed over until they are published (<see cref="AwaitsSharedPrefill"/>).
    /// </summary>
    private void Admit()
    {
        // A request's samples fork from it once its prompt is computed and run beside it: admitting it takes their
        // places too, so the running count (and KIVI's exact rows, set aside per running sequence) stays in bounds.
        int places = 0;
        foreach (var running in _running) places += SequencesOnceForked(running);
        for (var node = _waiting.First; node != null;)
        {
            var seq = node.Value;
            if (places + SequencesOnceForked(seq) > Options.RunningLimit) break; // also ends the loop at the limit
            if (AwaitsSharedPrefill(seq))
            {
                node = node.Next;
                continue;
            }
            seq.Kv ??= PolicyOf(seq.Handle.Request) is { KeepsEverything: false } policy
                ? new PagedKvSequence(Pool, ContextLength, policy, _model.Rope)
                : new PagedKvSequence(Pool, ContextLength);
            // SnapKV compresses the prompt once, at its end, whatever steps the batch splits it into.
            if (seq.Kv.Length == 0) seq.Kv.BeginPrompt(seq.PromptLength);
            if (seq.Kv.Length == 0 && UsesPrefixCache(seq.Kv.Policy) && !seq.Handle.PromptLogprobsPending)
            {
                int cached = PrefixCache.Adopt(seq.Kv, CollectionsMarshal.AsSpan(seq.Tokens), ref seq.Prefix);
                if (!seq.IsDecoding) seq.Handle.CachedPromptTokens = Math.Max(seq.Handle.CachedPromptTokens, cached);
            }
            // Admit only what can hold all its pending tokens now, so admission does not immediately cause preemption.
            int needed = seq.Kv.BlocksNeeded(seq.Tokens.Count);
            if (needed > Pool.AvailableBlocks && _running.Count > 0)
            {
                ReleaseBlocks(seq);
                break;
            }
            var next = node.Next;
            _waiting.Remove(node);
            node = next;
            _running.Add(seq);
            places += SequencesOnceForked(seq);
            seq.Handle.Status = RequestStatus.Running;
        }
    }

    /// <summary>
    /// Before the step takes blocks: the cached prefixes the queue will adopt count as just used, the queue's head
    /// last (<see cref="PrefixCache.Refresh"/>), so the blocks the pool gives up are first those no queued request
    /// wants and then those of the request that runs last, not the history of the conversation that runs next.
    /// </summary>
    private void RefreshQueuedPrefixes()
    {
        if (!Options.PrefixCaching || Pool.CachedBlocks == 0) return;
        // A step takes at most a block per running sequence's copy-on-write, and its tokens' blocks (one more per
        // sequence where a segment straddles two): with that many free, nothing is evicted and the order is moot.
        if (Pool.FreeBlocks > Options.MaxStepTokens / Pool.BlockSize + 2 * _running.Count + 1) return;
        // Only the part of the queue that can start soon (one batch's worth): a deep queue would otherwise have every
        // prompt matched again at each step under pressure, and its far end's order changes nothing yet.
        var node = _waiting.First;
        for (int i = 1; i < Options.MaxRunningSequences && node?.Next != null; i++) node = node.Next;
        for (; node != null; node = node.Previous)
            if (node.Value is { Kv: null } seq && UsesPrefixCache(PolicyOf(seq.Handle.Request)) && !seq.Handle.PromptLogprobsPending)
                PrefixCache.Refresh(CollectionsMarshal.AsSpan(seq.Tokens), seq.Prefix.Root);
    }

    /// <summary>
    /// Whether a sequence not yet started should wait for a running one that is computing its prompt now: both share
    /// prompt blocks past what the running one has published (requests that arrive together with one system prompt),
    /// so waiting until they are published turns them into hits instead of computing them twice. The running one
    /// computes some of its prompt every step (or is preempted, and then nobody waits for it), so the wait ends.
    /// </summary>
    private bool AwaitsSharedPrefill(EngineSequence seq)
    {
        // One that will not adopt cached blocks (a policy or KV type that shares none) has nothing to wait for.
        if (seq.Kv != null || !UsesPrefixCache(PolicyOf(seq.Handle.Request)) || seq.Handle.PromptLogprobsPending) return false;
        int size = Pool.BlockSize;
        var tokens = CollectionsMarshal.AsSpan(seq.Tokens);
        foreach (var other in _running)
        {
            if (other.Finished || other.IsDecoding || other.Kv is not { Policy.KeepsEverything: true } || other.Prefix.Root != seq.Prefix.Root) continue;
            var prompt = CollectionsMarshal.AsSpan(other.Tokens)[..other.PromptLength];
            // The shared blocks the running one has yet to publish; this one adopts at most all but its last token.
            int shared = Math.Min(tokens[..^1].CommonPrefixLength(prompt), other.PromptLength);
            if (shared / size > other.Prefix.Blocks) return true;
        }
        return false;
    }

    /// <summary>
    /// Decodes first (one token per running sequence that has finished its prompt), then prompt chunks, oldest first,
    /// within the step's token budget. Preempts the newest sequences when blocks run out.
    /// </summary>
    private bool BuildBatch()
    {
        _segments.Clear();
        _segmentOwners.Clear();
        _segmentStarts.Clear();
        _batchTokens.Clear();
        int budget = Options.MaxStepTokens;
        _running.Sort((a, b) => a.Arrival != b.Arrival ? a.Arrival.CompareTo(b.Arrival) : a.Sample.CompareTo(b.Sample));
        _order.Clear();
        _order.AddRange(_running);
        foreach (bool decodes in (ReadOnlySpan<bool>)[true, false])
        {
            // A snapshot, since reserving blocks may preempt (remove) sequences from _running.
            foreach (var seq in _order)
            {
                if (budget == 0) break;
                if (seq.Finished || seq.Kv == null || (seq.Pending == 1) != decodes) continue;
                int count = Math.Min(seq.Pending, budget);
                if (!TryReserve(seq, seq.Kv.Length + count)) continue;
                bool reachesEnd = count == seq.Pending;
                // A prompt being scored wants the logits of every position that predicts one of its tokens.
                bool scores = seq.Handle.PromptLogprobsPending && seq.Kv.Length < seq.PromptLength - 1;
                _segments.Add(new BatchSegment(seq.Kv, count, scores ? LogitsRequest.All : reachesEnd ? LogitsRequest.Last : LogitsRequest.None));
                _segmentOwners.Add(seq);
                _segmentStarts.Add(seq.Kv.Length);
                _batchTokens.AddRange(CollectionsMarshal.AsSpan(seq.Tokens).Slice(seq.Kv.Length, count));
                budget -= count;
            }
        }
        return _segments.Count > 0;
    }

    /// <summary>Reserves blocks for a sequence, preempting newer sequences while the pool is short. False if it was preempted itself.</summary>
    private bool TryReserve(EngineSequence seq, int length)
    {
        while (seq.Kv!.BlocksNeeded(length) > Pool.AvailableBlocks)
        {
            var victim = _running.Where(s => !s.Finished && s.Kv != null && !_segmentOwners.Contains(s))
                .OrderByDescending(s => s.Arrival).ThenByDescending(s => s.Sample).First();
            Preempt(victim);
            if (victim == seq) return false;
        }
        seq.Kv.Reserve(length);
        return true;
    }

    /// <summary>Frees a sequence's blocks and sends it back to the front of the queue to be recomputed.</summary>
    private void Preempt(EngineSequence seq)
    {
        PublishTail(seq);
        ReleaseBlocks(seq);
        seq.Preemptions++;
        _running.Remove(seq);
        _waiting.AddFirst(seq);
        seq.Handle.Status = RequestStatus.Waiting;
        Metrics.Preempted();
    }

    private static void ReleaseBlocks(EngineSequence seq)
    {
        seq.Kv?.Release();
        seq.Kv = null;
        seq.Prefix = seq.Prefix.Restart();
    }

    private int SampleAndAdvance()
    {
        int row = 0, produced = 0, vocab = _model.Config.VocabSize;
        for (int i = 0; i < _segments.Count; i++)
        {
            var segment = _segments[i];
            var seq = _segmentOwners[i];
            if (segment.Logits == LogitsRequest.All) ScorePrompt(seq, _segmentStarts[i], _logits.AsSpan(row * vocab, segment.TokenCount * vocab));
            row += segment.LogitRows;
            if (segment.Logits == LogitsRequest.None || _segmentStarts[i] + segment.TokenCount < seq.Tokens.Count) continue;
            var logits = _logits.AsSpan((row - 1) * vocab, vocab);
            if (WillFork(seq)) ForkSamples(seq, logits);
            if (Advance(seq, logits)) produced++;
        }
        return produced;
    }

    /// <summary>Each row of a scored prompt's segment gives the log-probability of the prompt token after its position.</summary>
    private void ScorePrompt(EngineSequence seq, int start, ReadOnlySpan<float> rows)
    {
        int vocab = _model.Config.VocabSize, top = seq.Handle.Request.PromptLogprobs!.Value;
        var prompt = seq.Handle.Request.PromptTokens;
        for (int r = 0; r * vocab < rows.Length && start + r + 1 < seq.PromptLength; r++)
            seq.Handle.SetPromptLogprobs(start + r + 1, TokenLogprobs.From(rows.Slice(r * vocab, vocab), prompt[start + r + 1], top));
    }

    /// <summary>Running sequences <paramref name="seq"/> becomes: all its request's samples if it is still to fork them.</summary>
    private static int SequencesOnceForked(EngineSequence seq) => WillFork(seq) ? seq.Handle.Request.SampleCount : 1;

    private static bool WillFork(EngineSequence seq) => !seq.IsDecoding && seq.Handle.Request.SampleCount > 1 && seq.Sample == 0;

    /// <summary>Parallel sampling: once the prompt is computed, the other samples share its blocks and its logits.</summary>
    private void ForkSamples(EngineSequence parent, ReadOnlySpan<float> logits)
    {
        for (int s = 1; s < parent.Handle.Request.SampleCount; s++)
        {
            var child = NewSequence(parent.Handle, s, [.. parent.Tokens], parent.Arrival, parent.Prefix);
            child.Kv = parent.Kv!.Fork();
            _running.Add(child);
            var copy = logits.ToArray();
            Advance(child, copy);
        }
    }

    /// <summary>Samples a sequence's next token; false when it was only to score its prompt (nothing to generate), and ends it.</summary>
    private bool Advance(EngineSequence seq, Span<float> logits)
    {
        if (seq.Stepper.Finish is { } done)
        {
            Finish(seq, done);
            return false;
        }
        var step = seq.Stepper.Next(logits, seq.Tokens);
        bool first = seq.Handle.TimeToFirstToken == null;
        seq.Handle.Emit(seq.Sample, step.Token, step.Text, step.Logprobs);
        Metrics.TokenProduced(seq.Handle, first, ref seq.LastTokenAt, System.Diagnostics.Stopwatch.GetTimestamp());
        if (step.Finish is { } reason) Finish(seq, reason);
        return true;
    }

    private void Finish(EngineSequence seq, FinishReason reason, bool cancelled = false)
    {
        if (seq.Finished) return;
        seq.Finished = true;
        if (!cancelled)
        {
            string rest = seq.Stepper.Flush();
            if (rest.Length > 0) seq.Handle.Emit(seq.Sample, -1, rest);
        }
        seq.Handle.FinishReasons[seq.Sample] = reason;
        PublishTail(seq);
        ReleaseBlocks(seq);
        var h = seq.Handle;
        if (cancelled) h.Complete(RequestStatus.Cancelled);
        else if (--h.LiveSamples == 0) h.Complete(RequestStatus.Finished);
    }

    /// <summary>Ends every sample of a sequence's request with <see cref="RequestStatus.Failed"/>.</summary>
    private void Fail(EngineSequence seq, string error)
    {
        if (seq.Finished) return;
        seq.Finished = true;
        ReleaseBlocks(seq);
        seq.Handle.Complete(RequestStatus.Failed, error);
        // Its other samples cannot finish either.
        foreach (var other in _running)
            if (other.Handle == seq.Handle && !other.Finished) { other.Finished = true; ReleaseBlocks(other); }
        for (var node = _waiting.First; node != null;)
        {
            var next = node.Next;
            if (node.Value.Handle == seq.Handle) { ReleaseBlocks(node.Value); _waiting.Remove(node); }
            node = next;
        }
    }

    private KvCachePolicy PolicyOf(EngineRequest r) => r.CachePolicy ?? Options.CachePolicy ?? KvCachePolicy.OfModel(_model.Config, ContextLength);

    /// <summary>
    /// Publishes every newly completed full block to the prefix cache; not a windowed sequence's (past the window its
    /// keys and values depend on the window, and its blocks are freed as the window moves).
    /// </summary>
    private void PublishFullBlocks()
    {
        if (!Options.PrefixCaching) return;
        foreach (var seq in _running)
            if (seq.Kv != null && UsesPrefixCache(seq.Kv.Policy)) PrefixCache.Publish(seq.Kv, CollectionsMarshal.AsSpan(seq.Tokens), ref seq.Prefix);
    }

    /// <summary>
    /// Whether a sequence under <paramref name="policy"/> adopts and publishes prefix-cache blocks: not under a window or
    /// eviction policy, nor with a KV type whose rows do not stand alone (KIVI: <see cref="PagedKvSequence.ExactRowsReason"/>),
    /// whose blocks would read differently shared than computed.
    /// </summary>
    private bool UsesPrefixCache(KvCachePolicy policy) => Options.PrefixCaching && policy.KeepsEverything && Pool.Format.RowsStandAlone;

    /// <summary>
    /// Keeps the last partial block of a sequence that lets go of its blocks (finished, cancelled or preempted) in the
    /// prefix cache: the next turn of a conversation, or the sequence itself when recomputed, takes its rows instead of
    /// computing them again. Not for a failed step's sequences (their last K/V are not usable).
    /// </summary>
    private void PublishTail(EngineSequence seq)
    {
        if (seq.Kv is { } kv && UsesPrefixCache(kv.Policy))
            PrefixCache.PublishTail(kv, CollectionsMarshal.AsSpan(seq.Tokens), ref seq.Prefix);
    }

    /// <summary>Bumps <see cref="Changes"/> when disposed: at the end of a step, whichever way it ends.</summary>
    private readonly struct ChangeCounted(LlmEngine engine) : IDisposable
    {
        public void Dispose() => Interlocked.Increment(ref engine._changes);
    }

    /// <summary>
    /// Saves the cached prefix blocks of a conversation (its <paramref name="tokens"/> under <paramref name="salt"/>)
    /// to <paramref name="stream"/> (<see cref="KvSharp.Persistence.PrefixFile"/>), as far as they are in RAM; returns
    /// the positions saved. <see cref="RestorePrefix"/> puts them back, here or in another engine of the same model.
    /// </summary>
    public int SavePrefix(IReadOnlyList<int> tokens, string? salt, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        RefuseWithoutPrefixCache();
        var blocks = new List<byte[]>();
        int[] ids = [.. tokens];
        using (_lock.Enter()) PrefixCache.Export(ids, salt, blocks.Add);
        int positions = blocks.Count * Pool.BlockSize;
        KvSharp.Persistence.PrefixFile.Write(stream, ids.AsSpan(0, positions), blocks);
        return positions;
    }

    /// <summary>
    /// Puts a saved prefix (<see cref="SavePrefix"/>) back into the prefix cache under <paramref name="salt"/>, so the
    /// conversation's next request adopts it instead of computing it; returns the positions cached. A file of another
    /// model, KV type or salt, or a damaged one, is refused (<see cref="InvalidDataException"/>) with the reason.
    /// </summary>
    public int RestorePrefix(Stream stream, string? salt)
    {
        RefuseWithoutPrefixCache();
        var (tokens, blocks) = KvSharp.Persistence.PrefixFile.Read(stream);
        int cached;
        using (_lock.Enter()) cached = PrefixCache.Import(tokens, salt, blocks);
        Interlocked.Increment(ref _changes);
        return cached;
    }

    private void RefuseWithoutPrefixCache()
    {
        if (!Pool.Format.RowsStandAlone)
            throw new NotSupportedException($"an engine of {Pool.Format.Name} keeps no prefix cache to save or restore: {PagedKvSequence.ExactRowsReason}");
        if (Pool.LayerGroups.SplitsLocalLayers)
            throw new NotSupportedException($"a saved prefix holds blocks of every layer, and this engine keeps {_model.Config.Architecture}'s local layers apart ({Pool.LayerGroups}): start it with FullLocalLayers (--swa-full) to save or restore prefixes");
    }

    public void Dispose()
    {
        using (_lock.Enter())
        {
            foreach (var s in _running) ReleaseBlocks(s);
            foreach (var s in _waiting) ReleaseBlocks(s);
            _running.Clear();
            _waiting.Clear();
            _inbox.Clear();
            Publish();
        }
        Metrics.Dispose();
        Pool.Dispose();
    }
}
