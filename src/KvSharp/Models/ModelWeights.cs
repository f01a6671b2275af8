using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>The weights of one transformer block. Matrices point into the memory-mapped model file.</summary>
public sealed class LayerWeights
{
    /// <summary>RMSNorm weights before the attention; null where the model has none (OLMo 2 normalises after).</summary>
    public required float[]? AttentionNorm { get; init; }
    /// <summary>The LayerNorm's bias before the attention (<see cref="ModelConfig.LayerNorm"/>); null for none.</summary>
    public float[]? AttentionNormBias { get; init; }
    public required WeightMatrix Query { get; init; }
    public required WeightMatrix Key { get; init; }
    public required WeightMatrix Value { get; init; }
    public required WeightMatrix AttentionOutput { get; init; }
    public float[]? QueryBias { get; init; }
    public float[]? KeyBias { get; init; }
    public float[]? ValueBias { get; init; }
    /// <summary>The attention output projection's bias (attn_output.bias, which some llama-family files carry); null for none.</summary>
    public float[]? OutputBias { get; init; }
    /// <summary>Each query head's sink logit (<see cref="ModelConfig.HasLearnedSinks"/>, gpt-oss); null where the model has none.</summary>
    public float[]? SinkLogits { get; init; }
    /// <summary>Per-head RMSNorm weights of the queries and keys (qwen3), HeadDim each; null where the model has none.</summary>
    public float[]? QueryNorm { get; init; }
    public float[]? KeyNorm { get; init; }
    /// <summary>RMSNorm weights before the feed-forward; null where the model has none (OLMo 2).</summary>
    public required float[]? FeedForwardNorm { get; init; }
    public float[]? FeedForwardNormBias { get; init; }
    /// <summary>RMSNorm weights of the attention and feed-forward outputs (Gemma 2/3); null where the model has none.</summary>
    public float[]? AttentionPostNorm { get; init; }
    public float[]? FeedForwardPostNorm { get; init; }
    /// <summary>
    /// The dense feed-forward's matrices; unset (null data) where the layer is a <see cref="Experts"/> block. Gate is also
    /// unset where the feed-forward is not gated (phi2, starcoder2, gpt2: down(act(up(x) + up bias)) + down bias).
    /// </summary>
    public WeightMatrix Gate { get; init; }
    public WeightMatrix Up { get; init; }
    public WeightMatrix Down { get; init; }
    /// <summary>The feed-forward's biases (ffn_gate.bias, ffn_up.bias, ffn_down.bias); null for none.</summary>
    public float[]? GateBias { get; init; }
    public float[]? UpBias { get; init; }
    public float[]? DownBias { get; init; }
    /// <summary>Whether the dense feed-forward is gated (gate and up, SwiGLU or GeGLU) rather than up alone.</summary>
    public unsafe bool IsGated => Gate.Data != null;
    /// <summary>The mixture-of-experts feed-forward that replaces Gate/Up/Down in an MoE model; null in a dense one.</summary>
    public MixtureOfExperts? Experts { get; init; }

    /// <summary>
    /// Multi-head latent attention's own weights (deepseek2); null elsewhere. <see cref="Key"/> is then the latent's
    /// projection (attn_kv_a_mqa) and <see cref="Value"/> unset: the values are the cached latents.
    /// </summary>
    public LatentAttentionWeights? Latent { get; init; }

    /// <summary>The matrices the layer multiplies by: q, k, v, output (or latent attention's), then gate, up, down or the router and every expert.</summary>
    public IEnumerable<WeightMatrix> Matrices() =>
        (Latent is { } latent ? [Query, AttentionOutput, .. latent.Matrices()] : new[] { Query, Key, Value, AttentionOutput })
            .Concat(Experts?.Matrices() ?? (IsGated ? [Gate, Up, Down] : [Up, Down]));
}

/// <summary>
/// All weights of a model. Matrices are views of the mapped file; Q8_0, Q4_0, K-quant and F32 matmul weights also have an
/// interleaved copy (<see cref="WeightMatrix.Interleaved"/>) in native memory. Norm vectors and biases are small and
/// kept as float arrays. Disposing frees the copies and releases the file mapping the matrices point into.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly IDisposable _owner;

    public WeightMatrix TokenEmbedding { get; }
    public IReadOnlyList<LayerWeights> Layers { get; }
    public float[] OutputNorm { get; }
    /// <summary>The output LayerNorm's bias (<see cref="ModelConfig.LayerNorm"/>); null for none.</summary>
    public float[]? OutputNormBias { get; init; }
    /// <summary>The classifier's bias (output.bias, phi2); null for none.</summary>
    public float[]? OutputBias { get; init; }
    /// <summary>Learned position embeddings (position_embd, gpt2), one row per position; null where positions rotate.</summary>
    public WeightMatrix? PositionEmbedding { get; init; }
    /// <summary>The classifier; the same matrix as <see cref="TokenEmbedding"/> when the model ties them.</summary>
    public WeightMatrix Output { get; }
    public bool TiedOutput { get; }
    /// <summary>Per-frequency divisors for rotary embedding (llama3-style scaling, the rope_freqs tensor); null if absent.</summary>
    public float[]? RopeFrequencyFactors { get; }
    /// <summary>
    /// Positions the rope factors are meant for: a LongRoPE model loaded with its short factors covers its original
    /// context only (load it with a longer <see cref="ModelLoadOptions.ContextLength"/> for the long ones); null: no limit.
    /// </summary>
    public int? RopePositionLimit { get; init; }

    /// <summary>
    /// The context a session or engine gets by default: the trained one, or less where positions are limited
    /// (<see cref="RopePositionLimit"/>); one asked for past the limit is refused with <see cref="PositionLimitReason"/>.
    /// </summary>
    public int ContextLengthFor(ModelConfig config, int? asked)
    {
        int limit = RopePositionLimit ?? int.MaxValue, context = asked ?? Math.Min(config.TrainedContextLength, limit);
        if (context > limit)
            throw new ArgumentOutOfRangeException(nameof(asked), context, $"a context of {context} positions is past what {config.Name} can place: {PositionLimitReason(config)}");
        return context;
    }

    /// <summary>Why positions stop at <see cref="RopePositionLimit"/>: a learned table (gpt2), or LongRoPE's short factors.</summary>
    public string PositionLimitReason(ModelConfig config) => config.LearnedPositions
        ? $"{config.Name} has learned position embeddings for {RopePositionLimit} positions only"
        : $"{config.Name} was loaded with the rope factors of its original {RopePositionLimit}-token context; load it with a longer context " +
          "(ModelLoadOptions.ContextLength, --context) for its long-context factors";

    public ModelWeights(IDisposable owner, WeightMatrix tokenEmbedding, IReadOnlyList<LayerWeights> layers, float[] outputNorm,
        WeightMatrix output, bool tiedOutput, float[]? ropeFrequencyFactors)
    {
        _owner = owner;
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        TiedOutput = tiedOutput;
        RopeFrequencyFactors = ropeFrequencyFactors;
    }

    /// <summary>
    /// Bytes of weight data one decode step reads (every matrix once; of a mixture of experts the router and, on average,
    /// <paramref name="expertsUsed"/> of its experts), for bandwidth estimates.
    /// </summary>
    public long ActiveMatrixBytes(int expertsUsed)
    {
        long total = TiedOutput ? 0 : (long)Output.RowBytes * Output.Rows;
        foreach (var m in LayerMatrices()) total += (long)m.RowBytes * m.Rows;
        foreach (var l in Layers)
            if (l.Experts is { } moe && expertsUsed < moe.Count) total -= moe.ExpertBytes - moe.ExpertBytes / moe.Count * expertsUsed;
        return total + (long)TokenEmbedding.RowBytes * (TiedOutput ? TokenEmbedding.Rows : 0);
    }

    /// <summary>Bytes of weight data one decode step reads (every matrix once), for bandwidth estimates of dense models.</summary>
    public long MatrixBytes => ActiveMatrixBytes(int.MaxValue);

    public void Dispose()
    {
        // Interleaved copies are native memory the weights own (Dispose is idempotent, so a tied matrix is fine).
        Output.Interleaved?.Dispose();
        foreach (var m in LayerMatrices()) m.Interleaved?.Dispose();
        _owner.Dispose();
    }

    /// <summary>Every matrix a forward pass multiplies by: the seven of every layer, then the output (the tied embedding where it is tied).</summary>
    public IEnumerable<WeightMatrix> ProductMatrices() => LayerMatrices().Append(Output);

    /// <summary>The matrices of every layer (seven, or the attention's four and a mixture of experts).</summary>
    private IEnumerable<WeightMatrix> LayerMatrices() => Layers.SelectMany(l => l.Matrices());
}
