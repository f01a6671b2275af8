using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// A mixture-of-experts feed-forward block (Mixtral, Qwen3-MoE, OLMoE): a router matrix scores every expert for a
/// token, the token runs through the <see cref="ModelConfig.ExpertsUsed"/> best, and their outputs are summed weighted
/// by the router's probabilities. Each expert is a SwiGLU of its own; its three matrices are views of its slice of the
/// file's 3-D tensors (ffn_gate_exps, ffn_up_exps, ffn_down_exps), multiplied like any other matrix.
/// </summary>
public sealed unsafe class MixtureOfExperts
{
    /// <summary>[embedding → experts]: the router's logits (ffn_gate_inp).</summary>
    public required WeightMatrix Router { get; init; }
    public required WeightMatrix[] Gate { get; init; }
    public required WeightMatrix[] Up { get; init; }
    public required WeightMatrix[] Down { get; init; }

    /// <summary>
    /// The shared expert every token runs through (Qwen2-MoE), its output times sigmoid(its router row · x); null where
    /// the model has none.
    /// </summary>
    public SharedExpert? Shared { get; init; }

    public int Count => Gate.Length;

    /// <summary>The router, every expert's gate, up and down, then the shared expert's router row, gate, up and down.</summary>
    public IEnumerable<WeightMatrix> Matrices() =>
        [Router, .. Gate, .. Up, .. Down, .. Shared is { } s ? new[] { s.Router, s.Gate, s.Up, s.Down }.Where(m => m.Data != null) : []];

    /// <summary>Added to the router's probabilities to choose experts, not to weight them (DeepSeek V3's exp_probs_b); null for none.</summary>
    public float[]? SelectionBias { get; init; }

    /// <summary>Added to the router's logits before anything else (gpt-oss's ffn_gate_inp.bias); null for none.</summary>
    public float[]? RouterBias { get; init; }

    /// <summary>
    /// Each expert's biases of its gate and up products and of its output (gpt-oss: ffn_gate_exps.bias,
    /// ffn_up_exps.bias, ffn_down_exps.bias, one row per expert); null for none.
    /// </summary>
    public ExpertBiases? Biases { get; init; }

    /// <summary>Bytes of the routed experts' matrices (without the routers and the shared expert, which every token reads).</summary>
    public long ExpertBytes => Gate.Concat(Up).Concat(Down).Sum(m => m.TotalBytes);
}

/// <summary>Per expert x: Gate[x] and Up[x] (the expert's width each) and Down[x] (the embedding's width).</summary>
public sealed record ExpertBiases(float[][] Gate, float[][] Up, float[][] Down);

/// <summary>
/// A shared expert: a SwiGLU every token runs through, gated by a sigmoid of one router row (Qwen2-MoE), or added in
/// full where <see cref="Router"/> is unset (DeepSeek's, which are several experts' width as one).
/// </summary>
public sealed record SharedExpert(WeightMatrix Router, WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down);
