using System.Diagnostics;
using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Persistence;
using KvSharp.Sampling;

namespace KvSharp.Engine;

/// <summary>
/// One conversation with a model: a token history, its KV cache, and generation. Successive
/// <see cref="Generate"/> calls continue the same sequence, so earlier turns are not recomputed.
/// With <see cref="KvCacheMode.None"/> every step recomputes the whole sequence (the measured baseline).
/// Not thread-safe: one generation at a time.
/// </summary>
public sealed class InferenceSession : IDisposable
{
    private readonly LlmModel _model;
    private readonly ForwardPass _forward;
    private readonly List<int> _tokens = [];
    private readonly float[] _logits;
    private readonly KvCache _cache;
    // Context shifts of the current generation and the positions they discarded.
    private int _shifts, _shiftedOut;
    private ModelFingerprint? _fingerprint;

    public SessionOptions Options { get; }
    /// <summary>The model this session runs.</summary>
    public LlmModel Model => _model;
    public int ContextLength { get; }
    /// <summary>The sequence so far: prompts and generated tokens (after a context shift, less the discarded ones).</summary>
    public IReadOnlyList<int> Tokens => _tokens;
    /// <summary>The cache (for mode None, a scratch cache rebuilt every step).</summary>
    public KvCache Cache => _cache;
    public GenerationStats? LastStats { get; private set; }

    internal InferenceSession(LlmModel model, SessionOptions options)
    {
        _model = model;
        Options = options;
        ContextLength = model.Weights.ContextLengthFor(model.Config, options.ContextLength);
        if (ContextLength <= 0) throw new ArgumentOutOfRangeException(nameof(options), ContextLength, "context length must be positive");
        _forward = model.CreateForwardPass();
        _logits = new float[model.Config.VocabSize];
        // Mode None still needs somewhere to put K/V while one step's recomputation runs; it is emptied every step.
        var storage = options.CacheMode == KvCacheMode.Static ? KvCacheMode.Static : KvCacheMode.Contiguous;
        _cache = new KvCache(model.Config, storage, ContextLength, options.KvFormat,
            options.CachePolicy ?? KvCachePolicy.OfModel(model.Config, ContextLength), model.Rope, options.FullLocalLayers);
        if (model.Config.HasPerLayerPositions && options.ContextOverflow == ContextOverflow.Shift)
            throw new ArgumentException($"ContextOverflow.Shift does not apply to {model.Config.Architecture}: {PerLayerPositions.Why(model.Config)}; use ContextOverflow.Stop");
        if (!_cache.Policy.KeepsEverything && options.ContextOverflow == ContextOverflow.Shift)
            throw new ArgumentException($"ContextOverflow.Shift does not apply to cache policy '{_cache.Policy}': " +
                (_cache.Policy.EvictsByScore ? "it evicts to its budget by itself; " : "its window moves by itself; ") +
                "give the session a ContextLength as long as the sequence should grow", nameof(options));
        CheckShiftOptions(options, ContextLength);
    }

    private static void CheckShiftOptions(SessionOptions o, int contextLength)
    {
        if (o.ContextShiftKeep is int keep && (keep < 0 || keep >= contextLength))
            throw new ArgumentOutOfRangeException(nameof(o.ContextShiftKeep), keep,
                $"ContextShiftKeep must be within [0, {contextLength - 1}]: a context shift of a {contextLength}-token context must leave a position to discard");
        if (o.ContextShiftDiscard is < 1)
            throw new ArgumentOutOfRangeException(nameof(o.ContextShiftDiscard), o.ContextShiftDiscard, "ContextShiftDiscard must be at least 1");
        if (o.ContextOverflow == ContextOverflow.Shift && !o.KvFormat.RowsStandAlone)
            throw new ArgumentException($"ContextOverflow.Shift moves cached rows, which {o.KvFormat.Name} quantizes in groups along positions; use ContextOverflow.Stop");
    }

    public KvCacheMode CacheMode => Options.CacheMode;

    /// <summary>Generates a continuation of the conversation, streaming text as it becomes valid UTF-8.</summary>
    public IEnumerable<string> Generate(string prompt, GenerationOptions? options = null)
    {
        var tok = _model.Tokenizer;
        // Only the first turn of a session starts with BOS; later turns continue the sequence.
        var promptTokens = tok.Encode(prompt, addSpecial: _tokens.Count == 0, parseSpecial: false);
        return GenerateTokens(promptTokens, options ?? new GenerationOptions());
    }

    /// <summary>Generates after the given prompt tokens (appended to the session's sequence).</summary>
    public IEnumerable<string> GenerateTokens(IReadOnlyList<int> promptTokens, GenerationOptions options)
    {
        options.Validate(_model.Config.VocabSize);
        if (_tokens.Count == 0 && promptTokens.Count == 0)
            throw new ArgumentException("the prompt is empty and the tokenizer adds no BOS token: there is nothing to condition on");
        if (_tokens.Count + promptTokens.Count > ContextLength)
        {
            if (Options.ContextOverflow == ContextOverflow.Stop)
                throw new ContextOverflowException(_tokens.Count, promptTokens.Count, ContextLength);
            PlanShift(_tokens.Count + promptTokens.Count - _cache.Length); // throws now if no shift can make room
        }
        foreach (int t in promptTokens)
            if ((uint)t >= (uint)_model.Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(promptTokens), $"token id {t} is outside the vocabulary [0, {_model.Config.VocabSize})");
        var sampler = new Sampler(options.Sampling, _model.Config.VocabSize);
        return Run(promptTokens, options, sampler);
    }

    private IEnumerable<string> Run(IReadOnlyList<int> promptTokens, GenerationOptions options, Sampler sampler)
    {
        var tok = _model.Tokenizer;
        var stepper = new GenerationStepper(tok, options, sampler, ContextLength, skipLeadingSpace: _tokens.Count == 0 && tok.StripsLeadingSpace,
            Options.ContextOverflow);
        _shifts = _shiftedOut = 0;
        int reused = CacheMode == KvCacheMode.None ? 0 : _cache.Length;
        _tokens.AddRange(promptTokens);
        int prefilled = _tokens.Count - reused;
        // Only generated text is returned, but the detokenizer sees the prompt so its streaming state is right.
        stepper.Echo(promptTokens);

        var clock = Stopwatch.StartNew();
        ComputeLogits();
        var prefillTime = clock.Elapsed;
        clock.Restart();
        while (stepper.Finish == null)
        {
            var step = stepper.Next(_logits, _tokens);
            if (step.Text.Length > 0) yield return step.Text;
            if (step.Finish == null) ComputeLogits();
        }
        var decodeTime = clock.Elapsed;
        string rest = stepper.Flush();
        if (rest.Length > 0) yield return rest;
        LastStats = new GenerationStats
        {
            PromptTokens = promptTokens.Count,
            ReusedTokens = reused,
            PrefilledTokens = prefilled,
            GeneratedTokens = stepper.Generated,
            PrefillTime = prefillTime,
            DecodeTime = decodeTime,
            FinishReason = stepper.Finish.Value,
            ContextShifts = _shifts,
            ShiftedOutTokens = _shiftedOut,
            KvBytesPerToken = CacheMode == KvCacheMode.None ? 0 : _cache.BytesPerToken,
            KvBytesAllocated = CacheMode == KvCacheMode.None ? 0 : _cache.AllocatedBytes,
            KvBytesUsed = CacheMode == KvCacheMode.None ? 0 : _cache.UsedBytes,
        };
    }

    /// <summary>
    /// Brings the logits up to date with <see cref="Tokens"/>: with a cache, runs only the tokens the cache lacks;
    /// without one, recomputes the whole sequence from an empty scratch cache.
    /// </summary>
    private void ComputeLogits()
    {
        if (_tokens.Count > ContextLength && Options.ContextOverflow == ContextOverflow.Shift) ShiftContext();
        if (CacheMode == KvCacheMode.None) _cache.Reset();
        int from = _cache.Length;
        var pending = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens)[from..];
        // A prompt longer than a forward pass's batch runs in several: SnapKV still compresses it once, at its end.
        if (pending.Length > 1) _cache.BeginPrompt(_tokens.Count);
        _forward.Forward(pending, _cache, _logits, allLogits: false);
    }

    /// <summary>
    /// Makes room for the tokens not computed yet by a context shift (<see cref="ContextShift"/>): the cache moves and
    /// re-rotates its rows, and the same positions leave <see cref="Tokens"/>, which stays the sequence the cache holds.
    /// Without a cache the kept tokens are simply recomputed at their new positions.
    /// </summary>
    private void ShiftContext()
    {
        var shift = PlanShift(_tokens.Count - _cache.Length);
        if (CacheMode != KvCacheMode.None) _cache.Shift(shift.Keep, shift.Discard, _model.Rope);
        _tokens.RemoveRange(shift.Keep, shift.Discard);
        _shifts++;
        _shiftedOut += shift.Discard;
    }

    /// <summary>The shift that makes room for <paramref name="pending"/> tokens after the computed ones; throws if none can.</summary>
    private ContextShift PlanShift(int pending)
    {
        // By default the BOS token stays: llama.cpp's n_keep counts it in.
        var tok = _model.Tokenizer;
        int keep = Options.ContextShiftKeep ?? (_tokens.Count > 0 && tok.AddBos && _tokens[0] == tok.BosId ? 1 : 0);
        return ContextShift.ToFit(_cache.Length, pending, ContextLength, keep, Options.ContextShiftDiscard);
    }

    /// <summary>Logits for the next token after the current sequence (runs what is not cached yet).</summary>
    public ReadOnlySpan<float> NextTokenLogits()
    {
        if (_tokens.Count == 0) throw new InvalidOperationException("the session is empty");
        if (CacheMode != KvCacheMode.None && _cache.Length == _tokens.Count)
        {
            // Everything is cached; recompute the last position to get its logits.
            RewindCache(_tokens.Count - 1);
        }
        ComputeLogits();
        return _logits;
    }

    /// <summary>Rewinds the conversation to its first <paramref name="length"/> tokens; the cache keeps that prefix.</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > _tokens.Count)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"the session holds {_tokens.Count} tokens");
        _tokens.RemoveRange(length, _tokens.Count - length);
        if (_cache.Length > length) RewindCache(length);
    }

    /// <summary>
    /// The cache keeps the first <paramref name="length"/> positions, or, where a local layers' ring no longer holds what
    /// the next token reads (a long rewind of a Gemma conversation), none: the next step recomputes the tokens.
    /// </summary>
    private void RewindCache(int length)
    {
        if (_cache.CanTruncateTo(length)) _cache.Truncate(length);
        else _cache.Reset();
    }

    /// <summary>Starts over: an empty sequence and a zeroed cache, nothing carried from earlier requests.</summary>
    public void Reset()
    {
        _tokens.Clear();
        _cache.Reset();
        LastStats = null;
    }

    /// <summary>
    /// Writes the session (<see cref="SessionFile"/>: model fingerprint, KV layout, tokens, policy, the cached keys and
    /// values, checksummed) so that <see cref="Load"/> can continue it later without recomputing.
    /// </summary>
    public void Save(Stream stream)
    {
        if (CacheMode == KvCacheMode.None) throw new InvalidOperationException("a session with KvCacheMode.None keeps no cache to save");
        EnsureSavable("saved");
        SessionFile.Write(stream, Describe([.. _tokens], _cache.Length), _cache);
    }

    /// <summary>
    /// Replaces this session's contents with a saved one (<see cref="Save"/>), which must come from the same model and KV
    /// type and fit this session's context and overflow policy. Otherwise throws <see cref="SessionFileException"/> naming
    /// what is wrong: a file that does not match leaves the session as it was, one whose rows are truncated or corrupted
    /// leaves it empty.
    /// </summary>
    public void Load(Stream stream)
    {
        if (CacheMode == KvCacheMode.None) throw new InvalidOperationException("a session with KvCacheMode.None keeps no cache to restore into");
        EnsureSavable("restored");
        var saved = SessionFile.ReadHeader(stream);
        SessionCompatibility.Check(saved, Describe([], 0));
        Reset();
        SessionFile.ReadKv(stream, saved, _cache);
        _tokens.AddRange(saved.Tokens);
    }

    // A session file holds the stored rows of positions 0..n in order. A window or sinks policy keeps a ring of some of
    // them, and KIVI holds its newest rows apart until their group fills; the format describes neither, so such a
    // session is refused rather than written or read wrongly.
    /// <summary>
    /// Throws <see cref="NotSupportedException"/>, naming the reason, when this session's cache cannot be saved or
    /// restored (<see cref="Save"/>, <see cref="Load"/>): a window or sinks policy, or a KV type quantized in groups
    /// along positions. Lets a caller refuse before it computes anything it would then fail to save.
    /// </summary>
    public void EnsureSavable() => EnsureSavable("saved or restored");

    private void EnsureSavable(string what)
    {
        if (!_cache.Policy.KeepsEverything)
            throw new NotSupportedException($"a session with cache policy '{_cache.Policy}' cannot be {what}: session files hold the full cache only (policy full)");
        if (!_cache.Format.RowsStandAlone)
            throw new NotSupportedException($"a session with KV type {_cache.Format.Name} cannot be {what}: it quantizes rows in groups along positions, which session files do not hold");
    }

    private SavedSession Describe(int[] tokens, int cached) => new()
    {
        Model = _fingerprint ??= ModelFingerprint.Of(_model),
        Kv = KvLayout.Of(_cache),
        ContextLength = ContextLength,
        ContextOverflow = Options.ContextOverflow,
        ContextShiftKeep = Options.ContextShiftKeep,
        ContextShiftDiscard = Options.ContextShiftDiscard,
        Tokens = tokens,
        CachedLength = cached,
    };

    public void Dispose() => Reset();
}
