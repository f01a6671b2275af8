using KvSharp.Gguf;

namespace KvSharp.Models;

public sealed partial record ModelConfig
{
    /// <summary>
    /// Each query head has a learned logit that joins its softmax as one more column with no value behind it
    /// (attn_sinks, gpt-oss): a head can give part of its attention to nothing, so it need not pile it on the first
    /// tokens (not StreamingLLM's sink positions, which a cache policy keeps). The layer's logits are
    /// <see cref="LayerWeights.SinkLogits"/>.
    /// </summary>
    public bool HasLearnedSinks { get; init; }

    /// <summary>
    /// The experts' gate and up products, and their outputs, have biases of their own (ffn_gate_exps.bias,
    /// ffn_up_exps.bias, ffn_down_exps.bias), and the router a bias (ffn_gate_inp.bias): gpt-oss.
    /// </summary>
    public bool HasExpertBiases { get; init; }

    /// <summary>
    /// OpenAI's gpt-oss (llama.cpp's <c>gpt-oss</c>, LLM_ARCH_OPENAI_MOE): llama-style blocks with q/k/v and output biases,
    /// attention sinks, every other layer (the even ones, by default) attending through a sliding window, NeoX rope
    /// (YaRN in the released files), and a mixture of experts with biases, a softmax over the chosen experts' logits and
    /// OpenAI's clamped SwiGLU. The feed-forward's norm is named post_attention_norm. Only the window pattern and a
    /// local rope base are optional keys; llama.cpp requires the rest.
    /// </summary>
    private static ModelConfig GptOss(GgufFile file, ModelConfig c, Func<string, int?> count)
    {
        const string arch = "gpt-oss";
        if (c.SlidingWindow == null)
            throw new ModelFormatException($"{file.Path}: metadata '{arch}.attention.sliding_window' is missing");
        // llama.cpp reads a local rope base (rope.freq_base_swa) and defaults it to the global one; the released files
        // have none. One that differs would need the local layers' own angles, which only Gemma 3's path has.
        if (file.TryGetFloat($"{arch}.rope.freq_base_swa", out float localBase) && localBase != c.RopeTheta)
            throw new ModelFormatException($"{file.Path}: metadata '{arch}.rope.freq_base_swa' = {localBase} differs from the rope base {c.RopeTheta}, which KvSharp does not run for gpt-oss");
        return c with
        {
            // Of each pattern's layers all but the last attend through the window: with the default 2, the even layers.
            // (llama.cpp also reads a per-layer array here; the file reader refuses one, naming the key, as not an integer.)
            SlidingWindowPattern = count("attention.sliding_window_pattern") ?? 2,
            RopeStyle = RopeStyle.NeoX,
            HasQkvBias = true,
            HasLearnedSinks = true,
            HasExpertBiases = true,
            ExpertGating = ExpertGating.SoftmaxOfChosen,
            Activation = FeedForwardActivation.SwiGluClamped,
        };
    }
}
