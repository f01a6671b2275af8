using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Sampling;
using KvSharp.Tokenization;

namespace KvSharp.Engine;

/// <summary>One sampled token: its id, the text it made ready to show (often "" mid-character), and why generation ended, if it did.</summary>
internal readonly record struct GenerationStep(int Token, string Text, FinishReason? Finish, TokenLogprobs? Logprobs = null);

/// <summary>
/// The body of the generation loop, the one both <see cref="InferenceSession"/> and <see cref="LlmEngine"/> run: from
/// the logits after a sequence it samples the next token, appends it, turns it into text (whole UTF-8 characters,
/// held back while it may be the start of a stop string) and decides whether generation ends, and why. The callers
/// only compute logits and deliver text. One per generated sequence.
/// </summary>
internal sealed class GenerationStepper
{
    private readonly ITokenizer _tokenizer;
    private readonly GenerationOptions _options;
    private readonly Sampler _sampler;
    private readonly StreamingDetokenizer _detokenizer;
    private readonly StopStringMatcher _stops;
    private readonly int _contextLength;
    // The logits as the model gave them, kept only when logprobs are asked for (the sampler's penalties change them).
    private float[]? _rawLogits;
    private readonly ContextOverflow _overflow;
    // With a JSON format: what the output holds so far, and the logits kept to sample again among the tokens it allows.
    private JsonPrefix _json;
    private readonly bool _constrained;
    // Whether the output is JSON from its first byte, so the syntax alone may turn tokens away (not after a lead).
    private readonly bool _jsonSyntax;
    // With a schema: the output's bytes so far, read whole against it at each check.
    private readonly JsonSchemaPrefix? _schema;
    private readonly List<byte>? _output;
    // With a schema, where the output stands now: whole, and whether it ends inside a free string (read once a step).
    private bool _schemaComplete, _inFreeString;
    private IReadOnlyList<byte[]>? _stringRests;
    private JsonSchemaPrefix.StringContinuation? _ruleString;
    private float[]? _allowedLogits;
    // With a pattern: the reply's text held to it.
    private readonly PatternFollower? _pattern;
    // MinTokens: what may not come before it (the end-of-generation tokens and the stop tokens), found once.
    private int[]? _notYet;

    /// <param name="skipLeadingSpace">Drop the tokenizer's dummy-prefix space from the first text (see <see cref="StreamingDetokenizer"/>).</param>
    /// <param name="overflow">Whether a full context ends generation (<see cref="ContextOverflow.Stop"/>) or the caller shifts it and goes on.</param>
    public GenerationStepper(ITokenizer tokenizer, GenerationOptions options, Sampler sampler, int contextLength, bool skipLeadingSpace,
        ContextOverflow overflow = ContextOverflow.Stop)
    {
        _overflow = overflow;
        _tokenizer = tokenizer;
        _options = options;
        _sampler = sampler;
        _contextLength = contextLength;
        _detokenizer = new StreamingDetokenizer(tokenizer, skipLeadingSpace);
        _stops = new StopStringMatcher(options.StopStrings);
        if (options.MaxTokens <= 0) Finish = FinishReason.Length;
        _constrained = options.Format != ResponseFormat.Text;
        if (options.Format == ResponseFormat.Pattern)
        {
            _pattern = new PatternFollower(options.Pattern ?? throw new ArgumentException("ResponseFormat.Pattern needs GenerationOptions.Pattern", nameof(options)));
        }
        else if (_constrained) _json = new JsonPrefix(objectOnly: options.Format == ResponseFormat.JsonObject);
        if (options.Format == ResponseFormat.JsonSchema)
        {
            _schema = options.Schema ?? throw new ArgumentException("ResponseFormat.JsonSchema needs GenerationOptions.Schema", nameof(options));
            _output = [];
        }
        _jsonSyntax = _constrained && _pattern == null && _schema?.BeginsWithJson != false;
    }

    /// <summary>Tokens sampled so far.</summary>
    public int Generated { get; private set; }
    /// <summary>Why generation ended; null while it goes on.</summary>
    public FinishReason? Finish { get; private set; }

    /// <summary>
    /// Passes already-known tokens (a prompt) through the detokenizer without showing them, so its state (the leading
    /// space, a character split across tokens) is what it would be had it seen them generated.
    /// </summary>
    public void Echo(IReadOnlyList<int> tokens)
    {
        foreach (int t in tokens) _detokenizer.Append(t);
    }

    /// <summary>Samples the token after <paramref name="tokens"/> from <paramref name="logits"/> and appends it to them.</summary>
    public GenerationStep Next(Span<float> logits, List<int> tokens)
    {
        if (Finish != null) throw new InvalidOperationException($"generation already finished ({Finish})");
        if (_options.TopLogprobs != null) logits.CopyTo(_rawLogits ??= new float[logits.Length]);
        bool early = Generated < _options.MinTokens;
        if (early)
        {
            // Before MinTokens nothing may end the reply: those tokens are ruled out (their logprobs, from the copy
            // above, are still the model's).
            _notYet ??= [.. Enumerable.Range(0, logits.Length).Where(t => (_options.StopAtEndOfGeneration && _tokenizer.IsEndOfGeneration(t)) || _options.StopTokens.Contains(t))];
            foreach (int t in _notYet) logits[t] = float.NegativeInfinity;
        }
        int next = _constrained ? SampleAllowed(logits, tokens) : _sampler.Sample(logits, CollectionsMarshal.AsSpan(tokens));
        var logprobs = _options.TopLogprobs is int top ? TokenLogprobs.From(_rawLogits, next, top) : null;
        tokens.Add(next);
        Generated++;
        if (_constrained && next >= 0 && !_tokenizer.IsEndOfGeneration(next))
        {
            var piece = _tokenizer.TokenPiece(next);
            // The JSON syntax alone is followed with a schema too: it turns most tokens away without reading the output again.
            if (_jsonSyntax) _json.Feed(piece);
            _pattern?.Append(piece);
            if (_schema != null)
            {
                _output!.AddRange(piece);
                _schemaComplete = _schema.Check(CollectionsMarshal.AsSpan(_output), out _inFreeString, out _stringRests, out _ruleString) == JsonPrefixStatus.Complete;
            }
            // The value is whole: nothing may follow it.
            if (Complete) return End(next, _stops.Append(_detokenizer.Append(next)).Emit + _stops.Flush(), FinishReason.Stop, logprobs);
        }
        if (_options.StopAtEndOfGeneration && _tokenizer.IsEndOfGeneration(next)) return End(next, "", FinishReason.Stop, logprobs);
        if (!early && _options.StopTokens.Contains(next)) return End(next, "", FinishReason.Stop, logprobs);
        // Before MinTokens stop strings do not stop: the text goes out as it comes (vLLM checks them only after).
        var (text, stopped) = early ? (_stops.Flush() + _detokenizer.Append(next), false) : _stops.Append(_detokenizer.Append(next));
        if (stopped) return End(next, text, FinishReason.Stop, logprobs);
        // The length the caller asked for wins over the context filling at the same token.
        if (Generated >= _options.MaxTokens) return End(next, text, FinishReason.Length, logprobs);
        if (_overflow == ContextOverflow.Stop && tokens.Count >= _contextLength) return End(next, text, FinishReason.ContextFull, logprobs);
        return new GenerationStep(next, text, null, logprobs);
    }

    /// <summary>
    /// Samples as usual; where the token would break the JSON, samples again from the same logits with every token that
    /// would masked out (llama.cpp's grammar sampling does the same: the full mask only when the first choice fails).
    /// </summary>
    private int SampleAllowed(Span<float> logits, List<int> tokens)
    {
        var pristine = _allowedLogits ??= new float[logits.Length];
        logits.CopyTo(pristine);
        int next = _sampler.Sample(logits, CollectionsMarshal.AsSpan(tokens));
        if (Allows(next)) return next;
        int allowed = 0;
        for (int v = 0; v < pristine.Length; v++)
            if (Allows(v)) allowed++;
            else pristine[v] = float.NegativeInfinity;
        // No token continues the JSON (a vocabulary without the bytes it needs): end rather than break it.
        if (allowed == 0) return _tokenizer.EosId;
        next = _sampler.Sample(pristine, CollectionsMarshal.AsSpan(tokens));
        // A logit bias that rules out every token the JSON allows leaves nothing to draw from: end the same way.
        return Allows(next) ? next : _tokenizer.EosId;
    }

    /// <summary>Whether the output stays the start of a JSON object (or of a value the schema allows) with <paramref name="token"/> after it.</summary>
    private bool Allows(int token)
    {
        if (_tokenizer.IsEndOfGeneration(token)) return _pattern?.Matches ?? Complete;
        var piece = _tokenizer.TokenPiece(token);
        if (piece.IsEmpty) return false;
        if (_pattern != null) return _pattern.Allows(piece);
        var trial = _json;
        if (_jsonSyntax && !trial.Feed(piece)) return false;
        if (_schema != null)
        {
            // Inside a string the schema leaves free, whole characters without quotes, backslashes or control bytes
            // keep it free.
            if ((_inFreeString || _stringRests != null) && !piece.ContainsAny(FreeStringStops) && (!_inFreeString || System.Text.Unicode.Utf8.IsValid(piece)))
            {
                if (_inFreeString) return true;
                // Inside a property name or an enum value: the text must stay the start of one.
                foreach (var rest in _stringRests!)
                    if (rest.AsSpan().StartsWith(piece)) return true;
                return false;
            }
            // Inside a string held to a pattern, format or length: read against that string's bytes alone.
            if (_ruleString != null && !piece.ContainsAny(FreeStringStops)) return _ruleString.Allows(piece);
            int length = _output!.Count;
            _output.AddRange(piece);
            bool allowed = _schema.Check(CollectionsMarshal.AsSpan(_output)) != JsonPrefixStatus.Invalid;
            _output.RemoveRange(length, _output.Count - length);
            return allowed;
        }
        return true;
    }

    private static readonly System.Buffers.SearchValues<byte> FreeStringStops =
        System.Buffers.SearchValues.Create([(byte)'"', (byte)'\\', .. Enumerable.Range(0, 0x20).Select(b => (byte)b)]);

    /// <summary>The output is a whole JSON object (or value the schema allows).</summary>
    private bool Complete => _pattern?.Complete ?? (_schema != null ? _schemaComplete : _json.IsComplete);


    private GenerationStep End(int token, string text, FinishReason reason, TokenLogprobs? logprobs)
    {
        Finish = reason;
        return new GenerationStep(token, text, reason, logprobs);
    }

    /// <summary>
    /// The text still held back when generation ends (bytes of an unfinished character, a possible stop-string
    /// start); "" after a stop, whose remainder is never shown.
    /// </summary>
    public string Flush()
    {
        string rest = _stops.Append(_detokenizer.Flush()).Emit + _stops.Flush();
        return Finish == FinishReason.Stop ? "" : rest;
    }
}
