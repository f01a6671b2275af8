using System.Text.Json;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Errors;
using KvSharp.Server.Hosting;

namespace KvSharp.Server.Generation;

/// <summary>
/// Turns the shared OpenAI fields and a tokenized prompt into an <see cref="EngineRequest"/>, refusing what is out of
/// range with a 400 that names the field: the ranges are OpenAI's (temperature [0, 2], penalties [-2, 2], n up to 128).
/// </summary>
internal static class EngineRequests
{
    public const int MaxChoices = 128;

    /// <summary>Most alternatives a request may ask logprobs for (vLLM's default limit; OpenAI's completions allow 5).</summary>
    public const int MaxTopLogprobs = 20;

    /// <param name="defaultMaxTokens">max_tokens when the request has none (null: up to the end of the context).</param>
    /// <param name="topLogprobs">Alternatives per token to report logprobs for, checked by the endpoint (null: no logprobs).</param>
    /// <param name="promptField">The request field the prompt came from, named by a context-length error.</param>
    /// <param name="constraint">What the reply is held to, as the endpoint read it from the request (null: free text).</param>
    /// <param name="scorePrompt">
    /// Alternatives per prompt token to compute the prompt's logprobs with (<see cref="PromptScoring"/>; null: the
    /// prompt is not scored). A scored request may ask for max_tokens 0, and its prompt may then fill the context.
    /// </param>
    public static EngineRequest Create(SamplingParameters p, IReadOnlyList<int> prompt, EngineService served, int? defaultMaxTokens, int? topLogprobs = null,
        string promptField = "prompt", OtherServersFields.Constraint? constraint = null, int? scorePrompt = null)
    {
        CheckModel(p.Model, served);
        int context = served.ContextLength;
        // llama-server's names, where OpenAI's are absent: n_predict (-1: until the context ends), repeat_penalty.
        if (p.MaxTokens == null && p.NPredict is int nPredict)
        {
            if (nPredict < -1) throw ApiError.InvalidValue("n_predict", $"n_predict must be -1 (until the context ends) or a number of tokens, got {nPredict}");
            if (nPredict >= 0) p.MaxTokens = nPredict;
            else defaultMaxTokens = null;
        }
        p.RepetitionPenalty ??= p.RepeatPenalty;
        bool scoresOnly = scorePrompt != null && p.MaxTokens == 0;
        if (prompt.Count > context || (prompt.Count == context && !scoresOnly))
            throw ApiError.ContextLengthExceeded($"This model's maximum context length is {context} tokens, but the prompt has " +
                $"{prompt.Count} tokens and at least one must be left to generate; shorten the prompt", promptField);
        int room = context - prompt.Count;
        int maxTokens;
        if (p.MaxTokens is int requested)
        {
            if (requested < 1 && !scoresOnly)
                throw ApiError.InvalidValue("max_tokens", $"max_tokens must be at least 1 (0 only to score the prompt: with echo or prompt_logprobs), got {requested}");
            if (requested > room)
                throw ApiError.ContextLengthExceeded($"This model's maximum context length is {context} tokens. However, you requested " +
                    $"{(long)prompt.Count + requested} tokens ({prompt.Count} in the prompt, {requested} for the completion); " +
                    "reduce the prompt or max_tokens", promptField);
            maxTokens = requested;
        }
        else maxTokens = Math.Min(defaultMaxTokens ?? room, room);

        OtherServersFields.Refuse(p);
        int vocab = served.Model.Config.VocabSize;
        int minTokens = p.MinTokens ?? 0;
        if (minTokens < 0 || minTokens > maxTokens)
            throw ApiError.InvalidValue("min_tokens", $"min_tokens must be in [0, max_tokens = {maxTokens}], got {minTokens}");
        foreach (int t in p.StopTokenIds ?? [])
            if ((uint)t >= (uint)vocab)
                throw ApiError.InvalidValue("stop_token_ids", $"stop_token_ids names token {t}, but this model's vocabulary has {vocab} tokens (ids 0 to {vocab - 1})");
        if (p.StreamOptions != null && p.Stream != true)
            throw ApiError.InvalidValue("stream_options", "stream_options is only allowed when stream is true");
        int n = p.N ?? 1;
        if (n is < 1 or > MaxChoices) throw ApiError.InvalidValue("n", $"n must be in [1, {MaxChoices}], got {n}");
        // Checked here too, not only by the engine, so that the 400 names the field.
        int running = served.Engine.Options.RunningLimit;
        if (n > running)
            throw ApiError.InvalidValue("n", $"n must be at most {running}, the sequences this server runs at once (kvsharp serve --max-running), got {n}");
        float temperature = p.Temperature ?? 1f, topP = p.TopP ?? 1f, minP = p.MinP ?? 0f, repetition = p.RepetitionPenalty ?? 1f;
        float presence = p.PresencePenalty ?? 0f, frequency = p.FrequencyPenalty ?? 0f;
        int topK = p.TopK ?? 0;
        Allowed("temperature", temperature, temperature is >= 0 and <= 2, "in [0, 2]");
        Allowed("top_p", topP, topP is > 0 and <= 1, "in (0, 1]");
        Allowed("top_k", topK, topK >= 0, ">= 0");
        Allowed("min_p", minP, minP is >= 0 and <= 1, "in [0, 1]");
        Allowed("presence_penalty", presence, presence is >= -2 and <= 2, "in [-2, 2]");
        Allowed("frequency_penalty", frequency, frequency is >= -2 and <= 2, "in [-2, 2]");
        Allowed("repetition_penalty", repetition, repetition > 0 && float.IsFinite(repetition), "a finite number > 0");
        string windowField = p.PenaltyLastN != null ? "penalty_last_n" : "repeat_last_n";
        int window = p.PenaltyLastN ?? p.RepeatLastN ?? new SamplingOptions().PenaltyWindow;
        Allowed(windowField, window, window >= -1, "-1 (the whole context), 0 (no penalties) or a number of tokens");
        var sampling = new SamplingOptions
        {
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            MinP = minP,
            PresencePenalty = presence,
            FrequencyPenalty = frequency,
            RepetitionPenalty = repetition,
            PenaltyWindow = window == -1 ? context : window,
            Seed = p.Seed is long seed ? unchecked((ulong)seed) : (ulong)Random.Shared.NextInt64(),
            LogitBias = LogitBias(p.LogitBias, vocab),
        };
        return new EngineRequest
        {
            PromptTokens = prompt,
            Options = new GenerationOptions
            {
                MaxTokens = maxTokens,
                Sampling = sampling,
                StopStrings = StopStrings(p.Stop),
                StopAtEndOfGeneration = p.IgnoreEos != true,
                StopTokens = p.StopTokenIds ?? [],
                MinTokens = minTokens,
                Format = constraint?.Format ?? ResponseFormat.Text,
                Schema = constraint?.Schema,
                Pattern = constraint?.Pattern,
                TopLogprobs = topLogprobs,
            },
            CacheSalt = p.CacheSalt,
            CachePolicy = CachePolicy(p.KvPolicy, context, n),
            SampleCount = n,
            PromptLogprobs = scorePrompt,
        };
    }

    /// <summary>
    /// How many alternatives to compute the prompt's logprobs with: the most that prompt_logprobs (vLLM's, checked here)
    /// and <paramref name="echoed"/> (what an endpoint reports for its echoed prompt) ask for; null when neither does.
    /// </summary>
    public static int? PromptScoring(SamplingParameters p, int? echoed = null)
    {
        if (p.PromptLogprobs is < 0 or > MaxTopLogprobs)
            throw ApiError.InvalidValue("prompt_logprobs", $"prompt_logprobs must be in [0, {MaxTopLogprobs}], got {p.PromptLogprobs}");
        return p.PromptLogprobs is int asked && echoed is int shown ? Math.Max(asked, shown) : p.PromptLogprobs ?? echoed;
    }

    /// <summary>
    /// vLLM's truncate_prompt_tokens: the prompt's last k tokens where it holds more (left truncation, as vLLM cuts),
    /// k = -1 meaning as many as the context holds with one token to generate; the prompt itself when the field is
    /// absent. A k below -1, 0 or above the context is refused by name (vLLM refuses one above its max_model_len).
    /// </summary>
    public static IReadOnlyList<int> Truncated(SamplingParameters p, IReadOnlyList<int> prompt, EngineService served)
    {
        if (p.TruncatePromptTokens is not int k) return prompt;
        int context = served.ContextLength;
        if (k is 0 or < -1 || k > context)
            throw ApiError.InvalidValue("truncate_prompt_tokens", $"truncate_prompt_tokens must be a number of tokens from 1 to the context ({context}), or -1 (as many as the context holds with one to generate), got {k}");
        if (k == -1) k = context - 1;
        return prompt.Count <= k ? prompt : prompt is int[] array ? array[^k..] : [.. prompt.Skip(prompt.Count - k)];
    }

    /// <summary>
    /// kv_policy: null when absent (the engine's default applies), else the parsed policy, refused with a 400 naming the
    /// field when malformed, larger than the context, or a sinks or score-based policy asked for several choices (the
    /// engine could not run it right).
    /// </summary>
    private static KvCachePolicy? CachePolicy(string? text, int context, int choices)
    {
        if (text == null) return null;
        KvCachePolicy policy;
        try
        {
            policy = KvCachePolicy.Parse(text);
            policy.Validate(context);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw ApiError.InvalidValue("kv_policy", $"kv_policy: {e.Message}");
        }
        if (choices > 1 && policy.SingleSampleReason is { } oneChoice)
            throw ApiError.InvalidValue("kv_policy", $"kv_policy '{policy}' takes one choice per request (n = 1): {oneChoice}");
        return policy;
    }

    /// <summary>A request may name the model it expects; any name but the one served is refused.</summary>
    public static void CheckModel(string? requested, EngineService served)
    {
        if (requested != null && requested != served.ModelId) throw ApiError.ModelNotFound(requested, served.ModelId);
    }

    private static void Allowed<T>(string param, T value, bool ok, string allowed)
    {
        if (!ok) throw ApiError.InvalidValue(param, $"{param} must be {allowed}, got {value}");
    }

    /// <summary>Largest bias logit_bias takes either way (OpenAI's range).</summary>
    public const float MaxLogitBias = 100f;

    /// <summary>
    /// "logit_bias": absent, null, or an object from token ids, written as decimal strings, to a number in [-100, 100]
    /// (OpenAI's shape); every id one of the model's. Null when there is none.
    /// </summary>
    private static IReadOnlyDictionary<int, float>? LogitBias(JsonElement bias, int vocabSize)
    {
        if (bias.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
        if (bias.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidType("logit_bias", $"logit_bias must be an object from token ids to biases, e.g. {{\"50256\": -100}}; got a {bias.ValueKind}");
        var map = new Dictionary<int, float>();
        foreach (var entry in bias.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int token))
                throw ApiError.InvalidValue("logit_bias", $"logit_bias keys must be token ids (decimal integers), got '{entry.Name}'");
            if (token >= vocabSize)
                throw ApiError.InvalidValue("logit_bias", $"logit_bias names token {token}, but this model's vocabulary has {vocabSize} tokens (ids 0 to {vocabSize - 1})");
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetDouble(out double value))
                throw ApiError.InvalidType("logit_bias", $"logit_bias['{entry.Name}'] must be a number, got a {entry.Value.ValueKind}");
            if (value is < -MaxLogitBias or > MaxLogitBias)
                throw ApiError.InvalidValue("logit_bias", $"logit_bias['{entry.Name}'] must be in [-100, 100], got {value}");
            if (!map.TryAdd(token, (float)value))
                throw ApiError.InvalidValue("logit_bias", $"logit_bias names token {token} twice");
        }
        return map.Count == 0 ? null : map;
    }

    /// <summary>"stop": absent, null, a string, or a list of strings; none of them empty.</summary>
    private static IReadOnlyList<string> StopStrings(JsonElement stop)
    {
        switch (stop.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return [];
            case JsonValueKind.String:
                return [NonEmpty(stop.GetString()!)];
            case JsonValueKind.Array:
                var list = new List<string>();
                foreach (var e in stop.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.String) throw ApiError.InvalidType("stop", $"stop must be a string or a list of strings; found a {e.ValueKind} in the list");
                    list.Add(NonEmpty(e.GetString()!));
                }
                return list;
            default:
                throw ApiError.InvalidType("stop", $"stop must be a string or a list of strings, got a {stop.ValueKind}");
        }
    }

    private static string NonEmpty(string s) => s.Length > 0 ? s : throw ApiError.InvalidValue("stop", "stop strings must not be empty");
}
