using KvSharp.Gguf;

namespace KvSharp.Models;

public sealed partial record ModelConfig
{
    /// <summary>Multi-head latent attention (deepseek2); null for every other architecture.</summary>
    public LatentAttentionShape? LatentAttention { get; init; }

    /// <summary>
    /// Whether every layer's cached values are its cached keys, row for row: latent attention (<see cref="LatentAttention"/>)
    /// attends over one row per token as key (q . row) and as value (softmax . row, whose rotated part the heads then
    /// skip), so a cache that stores keys and values alike keeps that row once and reads its values from the keys
    /// (llama.cpp's MLA cache does the same, its V a view of K). Cache.KvElementFormat.StoresRowsOnce says which formats do.
    /// </summary>
    public bool ValuesAreKeys => LatentAttention != null;
    /// <summary>The first layers of a mixture-of-experts model that have a dense feed-forward of <see cref="FeedForwardDim"/> instead (DeepSeek: 1 to 3).</summary>
    public int LeadingDenseLayers { get; init; }
    /// <summary>Multiplies the chosen experts' weights, after any normalisation (DeepSeek's routed_scaling_factor).</summary>
    public float ExpertWeightsScale { get; init; } = 1f;
    public ExpertGating ExpertGating { get; init; } = ExpertGating.Softmax;
    /// <summary>The shared expert is gated by a sigmoid of a router row of its own (Qwen2-MoE), rather than always added in full (DeepSeek).</summary>
    public bool SharedExpertGated { get; init; } = true;

    /// <summary>Whether layer <paramref name="layer"/> runs a mixture of experts rather than a dense feed-forward.</summary>
    public bool LayerHasExperts(int layer) => IsMixtureOfExperts && layer >= LeadingDenseLayers;

    /// <summary>
    /// DeepSeek V2/V3's GGUF (llama.cpp's <c>deepseek2</c>, also Kimi's and GLM-4.7-Flash's): latent attention, a YaRN
    /// rope whose magnitude goes into the score scale instead, leading dense layers, and experts with shared ones.
    /// Two layouts are read: the older one (key_length 192, one attn_kv_b per layer) and the one llama.cpp writes since
    /// its latent cache (key_length 576 with key_length_mla 192, one KV head, attn_k_b and attn_v_b).
    /// </summary>
    private static ModelConfig DeepSeek2(GgufFile file, ModelConfig c, Func<string, int?> count, Func<string, int> required, Func<string, float, float> positive)
    {
        const string arch = "deepseek2";
        int kvRank = required("attention.kv_lora_rank"), ropeDim = c.RopeDimensions;
        // The split layout names the head's own widths apart (key_length is then the cached row's); the older one in key_length.
        int keyDim = count("attention.key_length_mla") ?? c.HeadDim;
        int valueDim = count("attention.value_length_mla") ?? count("attention.value_length") ?? c.HeadDim;
        if (keyDim <= ropeDim)
            throw new ModelFormatException($"{file.Path}: a deepseek2 head's key width {keyDim} must be more than its rotated part {ropeDim} ('{arch}.rope.dimension_count')");
        var shape = new LatentAttentionShape(count("attention.q_lora_rank") ?? 0, kvRank, keyDim - ropeDim, ropeDim, valueDim);

        int groups = count("expert_group_count") ?? 1, groupsUsed = count("expert_group_used_count") ?? groups;
        if (groupsUsed < groups)
            throw new ModelFormatException($"{file.Path}: experts chosen from {groupsUsed} of {groups} groups ('{arch}.expert_group_used_count') are not supported; only from all of them");
        long gating = file.TryGetInt64($"{arch}.expert_gating_func", out long g) ? g : 1;
        if (gating is not (1 or 2))
            throw new ModelFormatException($"{file.Path}: metadata '{arch}.expert_gating_func' = {gating} is not supported (1: softmax, 2: sigmoid)");
        int shared = count("expert_shared_count") ?? 0;

        // YaRN's magnitude goes into the score scale, not the rotation (llama.cpp's deepseek2): the rope gets
        // 1 / (1 + 0.1 ln factor), which its own mscale cancels, and scores are scaled by mscale^2 / sqrt(key width)
        // with mscale = 1 + yarn_log_multiplier x ln(factor). The file stores the multiplier as 0.1 x mscale_all_dim,
        // as b4748 reads it (a later llama.cpp divides it by 0.1 and multiplies by 0.1 again: the same value).
        float logMultiplier = file.TryGetFloat($"{arch}.rope.scaling.yarn_log_multiplier", out float lm) ? lm : 0f;
        if (!float.IsFinite(logMultiplier) || logMultiplier < 0)
            throw new ModelFormatException($"{file.Path}: metadata '{arch}.rope.scaling.yarn_log_multiplier' = {logMultiplier} is not a finite number >= 0");
        float mscale = c.RopeAttentionFactor * (1f + logMultiplier * MathF.Log(1f / c.RopeFrequencyScale));
        float ropeFactor = 1f / (1f + 0.1f * MathF.Log(1f / c.RopeFrequencyScale));

        return c with
        {
            LatentAttention = shape,
            // The cache holds one row per token: the rotated part and the latent, read by every head.
            KvHeadCount = 1,
            HeadDim = shape.CacheRowDim,
            RopeStyle = RopeStyle.Normal,
            RopeAttentionFactor = ropeFactor,
            AttentionScaleOverride = mscale * mscale / MathF.Sqrt(keyDim),
            LeadingDenseLayers = count("leading_dense_block_count") ?? 0,
            ExpertWeightsScale = positive("expert_weights_scale", 1f),
            NormalizeExpertWeights = file.TryGetBool($"{arch}.expert_weights_norm", out bool norm) && norm,
            ExpertGating = gating == 2 ? ExpertGating.Sigmoid : ExpertGating.Softmax,
            SharedExpertFeedForwardDim = shared * c.ExpertFeedForwardDim,
            SharedExpertGated = false,
        };
    }
}
