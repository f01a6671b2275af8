namespace KvSharp.Sampling;

/// <summary>How the next token is chosen from the logits. Temperature 0 is greedy (argmax, lowest id on ties).</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; }
    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (1 = off).</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens less likely than min_p x the most likely token's probability (0 = off).</summary>
    public float MinP { get; init; }
    /// <summary>llama.cpp-style repetition penalty over the last <see cref="PenaltyWindow"/> tokens (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Subtracted from the logit of every token that already appeared in the window (0 = off).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted once per occurrence of a token in the window (0 = off).</summary>
    public float FrequencyPenalty { get; init; }
    public int PenaltyWindow { get; init; } = 64;
    /// <summary>
    /// Added to the logits of the named token ids before anything else (OpenAI's and llama.cpp's logit_bias): a large
    /// positive bias makes a token all but certain, a large negative one all but rules it out, and negative infinity
    /// rules it out entirely. Every id must be one of the model's (the <see cref="Sampler"/> checks it). Logprobs still
    /// report the model's own distribution, before the bias and the penalties.
    /// </summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// <summary>Random seed; the same seed, prompt and options give the same output.</summary>
    public ulong Seed { get; init; } = 42;

    public static SamplingOptions Greedy { get; } = new();

    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be a finite number >= 0");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "top-k must be >= 0");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top-p must be in (0, 1]");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentOutOfRangeException(nameof(MinP), MinP, "min-p must be in [0, 1]");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "repetition penalty must be a finite number > 0");
        if (!float.IsFinite(PresencePenalty)) throw new ArgumentOutOfRangeException(nameof(PresencePenalty), PresencePenalty, "presence penalty must be finite");
        if (!float.IsFinite(FrequencyPenalty)) throw new ArgumentOutOfRangeException(nameof(FrequencyPenalty), FrequencyPenalty, "frequency penalty must be finite");
        if (LogitBias != null)
            foreach (var (token, bias) in LogitBias)
            {
                if (token < 0) throw new ArgumentOutOfRangeException(nameof(LogitBias), token, $"logit bias names token {token}: token ids are >= 0");
                if (float.IsNaN(bias) || float.IsPositiveInfinity(bias))
                    throw new ArgumentOutOfRangeException(nameof(LogitBias), bias, $"logit bias of token {token} must be a finite number or negative infinity (a ban), got {bias}");
            }
        if (PenaltyWindow < 0) throw new ArgumentOutOfRangeException(nameof(PenaltyWindow), PenaltyWindow, "penalty window must be >= 0");
    }
}
