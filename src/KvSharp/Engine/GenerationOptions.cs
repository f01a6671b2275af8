using KvSharp.Sampling;

namespace KvSharp.Engine;

/// <summary>What to generate and when to stop.</summary>
public sealed record GenerationOptions
{
    public int MaxTokens { get; init; } = 256;
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;
    /// <summary>Generation stops before any of these strings; the stop string itself is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop at the model's end-of-generation tokens (EOS, EOT).</summary>
    public bool StopAtEndOfGeneration { get; init; } = true;
    /// <summary>
    /// Token ids that end generation as the end-of-generation tokens do (vLLM's stop_token_ids): the reply stops after
    /// one with <see cref="FinishReason.Stop"/>, and its text is not returned.
    /// </summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];
    /// <summary>
    /// The fewest tokens to generate (vLLM's min_tokens): until this many are out, the end-of-generation tokens (where
    /// they stop generation) and <see cref="StopTokens"/> are ruled out and stop strings do not stop. At most
    /// <see cref="MaxTokens"/>. A JSON format still ends where its value is whole.
    /// </summary>
    public int MinTokens { get; init; }
    /// <summary>
    /// Report each sampled token's log-probability and those of the k most likely tokens (<see cref="TokenLogprobs"/>,
    /// on <see cref="GeneratedToken.Logprobs"/>); null: none, and nothing is computed or allocated for them.
    /// </summary>
    public int? TopLogprobs { get; init; }
    /// <summary>
    /// What the output must be: free text, or one JSON object (OpenAI's json_object mode): each token is one that keeps
    /// the output a prefix of a JSON object (<see cref="JsonPrefix"/>), and generation stops when the object closes.
    /// </summary>
    public ResponseFormat Format { get; init; } = ResponseFormat.Text;
    /// <summary>
    /// With <see cref="ResponseFormat.JsonSchema"/>: the schema the output's JSON value must follow
    /// (<see cref="JsonSchemaPrefix.For"/>, which refuses by name what it does not enforce).
    /// </summary>
    public JsonSchemaPrefix? Schema { get; init; }
    /// <summary>
    /// With <see cref="ResponseFormat.Pattern"/>: what the reply's text must match from start to end
    /// (<see cref="PatternPrefix.WholeText"/>, <see cref="PatternPrefix.OneOf"/>). Each token is one that keeps the text a
    /// prefix of a match; the end of generation may come only where it matches, and generation stops where nothing could follow.
    /// </summary>
    public PatternPrefix? Pattern { get; init; }

    /// <summary>
    /// Refuses what no model could honour (a negative or too large <see cref="MinTokens"/>) and what this one cannot
    /// (stop tokens and logit biases outside a vocabulary of <paramref name="vocabSize"/>), naming the option.
    /// </summary>
    public void Validate(int vocabSize)
    {
        if (MaxTokens < 0) throw new ArgumentOutOfRangeException(nameof(MaxTokens), MaxTokens, "max tokens must be >= 0");
        if (MinTokens < 0 || MinTokens > MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(MinTokens), MinTokens, $"min tokens must be in [0, max tokens = {MaxTokens}], got {MinTokens}");
        foreach (int t in StopTokens)
            if ((uint)t >= (uint)vocabSize)
                throw new ArgumentOutOfRangeException(nameof(StopTokens), t, $"stop token {t} is outside the vocabulary [0, {vocabSize})");
        Sampling.Validate();
        Sampler.CheckVocabulary(Sampling, vocabSize);
    }
}

/// <summary>What generated text must be.</summary>
public enum ResponseFormat
{
    Text,
    /// <summary>One JSON object, and nothing after it.</summary>
    JsonObject,
    /// <summary>One JSON value that <see cref="GenerationOptions.Schema"/> allows, and nothing after it.</summary>
    JsonSchema,
    /// <summary>A text that <see cref="GenerationOptions.Pattern"/> matches whole, and nothing after it.</summary>
    Pattern,
}

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced an end-of-generation token, or a stop string appeared.</summary>
    Stop,
    /// <summary>MaxTokens were generated.</summary>
    Length,
    /// <summary>
    /// The sequence filled the context length before MaxTokens (a longer context, or context shift, would have gone
    /// on). OpenAI-style APIs report it as "length", like <see cref="Length"/>.
    /// </summary>
    ContextFull,
}

/// <summary>Timing and sizes of the last generation.</summary>
public sealed record GenerationStats
{
    public int PromptTokens { get; init; }
    /// <summary>Tokens of the conversation that were already in the cache and did not need computing.</summary>
    public int ReusedTokens { get; init; }
    /// <summary>Tokens the prefill actually computed (the whole sequence without a cache).</summary>
    public int PrefilledTokens { get; init; }
    public int GeneratedTokens { get; init; }
    public TimeSpan PrefillTime { get; init; }
    public TimeSpan DecodeTime { get; init; }
    public FinishReason FinishReason { get; init; }
    /// <summary>Context shifts this generation made (<see cref="SessionOptions.ContextOverflow"/>).</summary>
    public int ContextShifts { get; init; }
    /// <summary>Positions the context shifts of this generation discarded, together.</summary>
    public int ShiftedOutTokens { get; init; }
    public long KvBytesPerToken { get; init; }
    public long KvBytesAllocated { get; init; }
    public long KvBytesUsed { get; init; }

    public double PrefillTokensPerSecond => PrefillTime > TimeSpan.Zero ? PrefilledTokens / PrefillTime.TotalSeconds : 0;
    /// <summary>Decode rate: tokens after the first (whose logits come from the prefill) per second of decode time.</summary>
    public double DecodeTokensPerSecond => DecodeTime > TimeSpan.Zero ? Math.Max(0, GeneratedTokens - 1) / DecodeTime.TotalSeconds : 0;
}
