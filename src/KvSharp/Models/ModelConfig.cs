using KvSharp.Gguf;

namespace KvSharp.Models;

/// <summary>How rotary position embedding pairs up dimensions.</summary>
public enum RopeStyle
{
    /// <summary>Adjacent pairs (2i, 2i+1): llama, and llama2.c checkpoints.</summary>
    Normal,
    /// <summary>Split halves (i, i + d/2): qwen2, qwen3, phi3 and other GPT-NeoX-style models.</summary>
    NeoX,
}

/// <summary>The hyperparameters of a decoder-only transformer, read from GGUF metadata or a llama2.c header.</summary>
public sealed partial record ModelConfig
{
    public required string Architecture { get; init; }
    public required int EmbeddingDim { get; init; }
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }
    public required int KvHeadCount { get; init; }
    public required int HeadDim { get; init; }
    public required int FeedForwardDim { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>The context length the model was trained with (metadata); sessions may ask for more.</summary>
    public required int TrainedContextLength { get; init; }
    /// <summary>
    /// The sliding window the model was trained with (GGUF <c>{arch}.attention.sliding_window</c>), applied to every
    /// layer (Mistral-style); null when every layer attends to the whole context.
    /// </summary>
    public int? SlidingWindow { get; init; }
    /// <summary>
    /// Interleaved local and global layers (Gemma 2: 2, Gemma 3: 6): with a pattern of n, layer l attends through
    /// <see cref="SlidingWindow"/> when l % n &lt; n - 1 and to the whole context otherwise; the window is then masked in
    /// the attention kernel on a full cache. 0: <see cref="SlidingWindow"/> (if any) applies to every layer as a cache
    /// policy (Mistral-style).
    /// </summary>
    public int SlidingWindowPattern { get; init; }
    /// <summary>The rope base of the local (sliding-window) layers where it differs from the global one (Gemma 3: 10,000).</summary>
    public float? LocalRopeTheta { get; init; }
    /// <summary>Multiplies the token embedding (Gemma: sqrt of the embedding width; Granite: its embedding_scale).</summary>
    public float EmbeddingScale { get; init; } = 1f;
    /// <summary>Multiplies each block's output before it joins the residual stream (Granite's residual_scale).</summary>
    public float ResidualScale { get; init; } = 1f;
    /// <summary>Divides the logits (Granite's logit_scale).</summary>
    public float LogitScale { get; init; } = 1f;
    public FeedForwardActivation Activation { get; init; } = FeedForwardActivation.Silu;
    /// <summary>Gemma 2/3 RMS-normalise the attention and feed-forward outputs before adding them to the residual stream.</summary>
    public bool HasPostNorms { get; init; }
    /// <summary>Attention scores soft-capped at this (Gemma 2: 50); 0 for none.</summary>
    public float AttentionSoftCap { get; init; }
    /// <summary>Logits soft-capped at this (Gemma 2: 30); 0 for none.</summary>
    public float FinalLogitSoftCap { get; init; }
    /// <summary>
    /// What scores are multiplied by: 1/sqrt(head_dim), except Granite (its attention.scale) and the 27B Gemma 2/3,
    /// which scale by 1/sqrt(embedding / heads) as llama.cpp does (their query_pre_attn_scalar; GGUF has no key for it,
    /// llama.cpp tells them by layer count).
    /// </summary>
    public float? AttentionScaleOverride { get; init; }
    public float AttentionScale => AttentionScaleOverride ?? 1f / MathF.Sqrt(HeadDim);

    /// <summary>The window layer <paramref name="layer"/> attends through inside the kernel (0: the whole context).</summary>
    public int LayerWindow(int layer) =>
        SlidingWindowPattern > 0 && SlidingWindow is int w && layer % SlidingWindowPattern < SlidingWindowPattern - 1 ? w : 0;

    /// <summary>Some layers attend through a window of their own (<see cref="SlidingWindowPattern"/>), others to everything.</summary>
    public bool HasLayerWindows => SlidingWindowPattern > 0 && SlidingWindow != null;

    /// <summary>
    /// Every <see cref="NoRopeLayerStep"/>-th layer (SmolLM3: 4) rotates neither queries nor keys (NoPE): llama.cpp
    /// hard-codes the step, GGUF has no key for it. 0: every layer rotates.
    /// </summary>
    public int NoRopeLayerStep { get; init; }

    /// <summary>Whether layer <paramref name="layer"/> rotates its queries and keys.</summary>
    public bool RotatesLayer(int layer) => !LearnedPositions && (NoRopeLayerStep == 0 || (layer + 1) % NoRopeLayerStep != 0);

    /// <summary>
    /// Layers differ in how positions enter them (windows of their own, or no rotation): a cache that drops, renumbers
    /// or re-rotates positions for every layer at once cannot hold such a model.
    /// </summary>
    public bool HasPerLayerPositions => HasLayerWindows || NoRopeLayerStep > 0 || LearnedPositions;
    public required float RmsNormEps { get; init; }
    public required float RopeTheta { get; init; }
    public required RopeStyle RopeStyle { get; init; }
    /// <summary>How many dimensions of each head are rotated (usually all of them).</summary>
    public required int RopeDimensions { get; init; }
    /// <summary>Linear rope scaling: positions are multiplied by this (1 / scaling factor).</summary>
    public float RopeFrequencyScale { get; init; } = 1f;
    /// <summary>
    /// Multiplies every rotary cos and sin (GGUF <c>{arch}.rope.scaling.attn_factor</c>; LongRoPE models such as
    /// Phi-3.5 store sqrt(1 + ln(s) / ln(original context))), so queries and keys both grow by it, as ggml's rope does.
    /// </summary>
    public float RopeAttentionFactor { get; init; } = 1f;
    /// <summary>
    /// LongRoPE (Phi-3 128k): the file holds two per-frequency divisor tables, rope_factors_short for contexts up to
    /// <see cref="RopeOriginalContextLength"/> and rope_factors_long beyond it.
    /// </summary>
    public bool LongRope { get; init; }
    /// <summary>The context the model was pretrained with before its rope was stretched (<c>{arch}.rope.scaling.original_context_length</c>).</summary>
    public int? RopeOriginalContextLength { get; init; }
    /// <summary>YaRN rope scaling (with <see cref="RopeFrequencyScale"/> 1 / its factor); null for none.</summary>
    public YarnScaling? Yarn { get; init; }
    /// <summary>Experts of each layer's mixture-of-experts feed-forward (<c>{arch}.expert_count</c>); 0 for a dense model.</summary>
    public int ExpertCount { get; init; }
    /// <summary>Experts each token runs through (<c>{arch}.expert_used_count</c>).</summary>
    public int ExpertsUsed { get; init; }
    /// <summary>Hidden width of one expert (<c>{arch}.expert_feed_forward_length</c>, else the feed-forward length).</summary>
    public int ExpertFeedForwardDim { get; init; }
    /// <summary>
    /// The chosen experts' router probabilities are divided by their sum (Mixtral, Qwen3-MoE); otherwise used as they
    /// are (OLMoE, Qwen2-MoE).
    /// </summary>
    public bool NormalizeExpertWeights { get; init; }
    /// <summary>
    /// Hidden width of the shared expert every token also runs through, gated by a sigmoid of its own router row
    /// (Qwen2-MoE: <c>{arch}.expert_shared_feed_forward_length</c>); 0 for none.
    /// </summary>
    public int SharedExpertFeedForwardDim { get; init; }
    public bool IsMixtureOfExperts => ExpertCount > 0;
    /// <summary>q/k/v biases are required (qwen2); other architectures use them when the file has them.</summary>
    public bool HasQkvBias { get; init; }
    /// <summary>
    /// Each head of the queries and keys is RMS-normalised (attn_q_norm / attn_k_norm, one weight per head
    /// dimension) after the projection and before RoPE: qwen3.
    /// </summary>
    public bool HasQkNorm { get; init; }
    /// <summary>The q/k norm is over the whole query and key vectors, not each head (OLMo 2).</summary>
    public bool QkNormOverWhole { get; init; }
    /// <summary>
    /// Attention and feed-forward read the RMS-normalised stream (attn_norm, ffn_norm); false for OLMo 2, whose blocks
    /// read the stream as it is and normalise their outputs instead (<see cref="HasPostNorms"/>).
    /// </summary>
    public bool HasPreNorms { get; init; } = true;
    /// <summary>
    /// Norms subtract the mean before they scale, and add a bias (LayerNorm, ggml_norm: phi2, starcoder2, gpt2,
    /// stablelm), rather than only dividing by the root mean square (RMSNorm). <see cref="RmsNormEps"/> is their epsilon.
    /// </summary>
    public bool LayerNorm { get; init; }
    /// <summary>
    /// The feed-forward reads the stream the attention read, and both blocks' outputs join it together: with the
    /// attention's norm (phi2; stablelm files without ffn_norm), x + attn(norm(x)) + ffn(norm(x)), or with a norm of
    /// its own where the layer has one (GPT-NeoX's parallel residual), x + attn(ln1(x)) + ffn(ln2(x)).
    /// </summary>
    public bool ParallelFeedForward { get; init; }
    /// <summary>A parallel feed-forward has a norm of its own (GPT-NeoX) rather than sharing the attention's (phi2).</summary>
    public bool ParallelFeedForwardNorm { get; init; }
    /// <summary>
    /// The feed-forward is gated, act(gate(x)) x up(x) (SwiGLU, GeGLU); false for phi2, starcoder2 and gpt2, whose
    /// feed-forward is act(up(x)) alone.
    /// </summary>
    public bool GatedFeedForward { get; init; } = true;
    /// <summary>
    /// Positions enter through a learned embedding added to the token's (position_embd, gpt2), not by rotating queries
    /// and keys: <see cref="RopeDimensions"/> is 0 and the sequence can be no longer than the table.
    /// </summary>
    public bool LearnedPositions { get; init; }
    public string Name { get; init; } = "";

    public int QueryDim => HeadCount * HeadDim;
    public int KvDim => KvHeadCount * HeadDim;
    /// <summary>Query heads that share one K/V head (1 = multi-head, HeadCount = multi-query).</summary>
    public int GroupSize => HeadCount / KvHeadCount;

    /// <summary>
    /// KV cache bytes per token: 2 (K and V) x layers x kv_heads x head_dim x bytes per element, or 1 x where
    /// <see cref="ValuesAreKeys"/> (for a type with a whole number of bytes per element, keys and values alike;
    /// Cache.KvSizing.BytesPerToken sizes any KV element type).
    /// </summary>
    public long KvBytesPerToken(int bytesPerElement) => (ValuesAreKeys ? 1L : 2L) * LayerCount * KvHeadCount * HeadDim * bytesPerElement;

    public static readonly string[] SupportedArchitectures = ["llama", "qwen2", "qwen2vl", "qwen2moe", "qwen3", "qwen3moe", "phi3", "olmo2", "olmoe", "exaone", "smollm3", "gemma", "gemma2", "gemma3", "granite", "granitemoe",
        "phi2", "starcoder2", "stablelm", "gpt2", "starcoder", "gptneox", "falcon", "command-r", "cohere2", "minicpm", "deepseek2", "gpt-oss"];

    /// <summary>Reads and validates the hyperparameters; errors name the file, key and value.</summary>
    public static ModelConfig FromGguf(GgufFile file)
    {
        if (!file.TryGetString("general.architecture", out string arch))
            throw new ModelFormatException($"{file.Path}: metadata 'general.architecture' is missing");
        if (!SupportedArchitectures.Contains(arch))
            throw new ModelFormatException(
                $"{file.Path}: architecture '{PrintableText.Of(arch)}' is not supported (supported: {string.Join(", ", SupportedArchitectures)})");

        // Counts must be stored as integers and floats as floats (GgufFile's typed getters say which key had which
        // type), so a damaged type byte cannot turn a bool into a block count of 1.
        int? Count(string suffix)
        {
            string key = $"{arch}.{suffix}";
            if (!file.TryGetInt64(key, out long v)) return null;
            if (v <= 0 || v > int.MaxValue) throw new ModelFormatException($"{file.Path}: metadata '{key}' = {v} is out of range (1..{int.MaxValue})");
            return (int)v;
        }
        int Required(string suffix) => Count(suffix) ?? throw new ModelFormatException($"{file.Path}: metadata '{arch}.{suffix}' is missing");
        // An optional float that must be positive and finite where the file gives it (scales, caps, factors).
        float Positive(string suffix, float absent)
        {
            string key = $"{arch}.{suffix}";
            if (!file.TryGetFloat(key, out float x)) return absent;
            if (!(x > 0) || !float.IsFinite(x)) throw new ModelFormatException($"{file.Path}: metadata '{key}' = {x} is not a positive finite number");
            return x;
        }
        // One the architecture must give (llama.cpp requires it).
        float RequiredPositive(string suffix) => file.TryGetFloat($"{arch}.{suffix}", out _) ? Positive(suffix, 0f)
            : throw new ModelFormatException($"{file.Path}: metadata '{arch}.{suffix}' is missing");

        int embd = Required("embedding_length");
        int layers = Required("block_count");
        int heads = Required("attention.head_count");
        int kvHeads = Count("attention.head_count_kv") ?? heads;
        // A mixture of experts without dense layers may name only its experts' width (llama.cpp reads the dense one as optional).
        int ffn = Count("feed_forward_length") ?? Count("expert_feed_forward_length") ?? Required("feed_forward_length");
        int ctx = Required("context_length");
        int headDim = Count("attention.key_length") ?? embd / heads;

        // StarCoder (the first) is GPT-2's blocks with multi-query attention.
        bool gpt2 = arch is "gpt2" or "starcoder";
        // Cohere's Command R and R7B (cohere2: Command R7B, Command A): LayerNorm without biases, attention and
        // feed-forward in parallel, the output tied to the embeddings, logits scaled.
        bool cohere = arch is "command-r" or "cohere2";
        bool layerNorm = gpt2 || arch is "phi2" or "starcoder2" or "stablelm" or "gptneox" or "falcon" || cohere;
        // GPT-NeoX says whether its feed-forward runs beside the attention (Pythia does); llama.cpp requires the key.
        bool neoxParallel = arch == "gptneox" && (file.TryGetBool("gptneox.use_parallel_residual", out bool par)
            ? par : throw new ModelFormatException($"{file.Path}: metadata 'gptneox.use_parallel_residual' is missing"));
        // The LayerNorm architectures name their epsilon layer_norm_epsilon (llama.cpp requires it).
        float eps = layerNorm ? RequiredPositive("attention.layer_norm_epsilon")
            : file.TryGetFloat($"{arch}.attention.layer_norm_rms_epsilon", out float e) ? e : 1e-5f;
        float theta = file.TryGetFloat($"{arch}.rope.freq_base", out float t) ? t : 10000f;
        bool learnedPositions = gpt2;
        int ropeDim = learnedPositions ? 0 : Count("rope.dimension_count") ?? headDim;

        float freqScale = 1f;
        YarnScaling? yarn = null;
        string? scalingType = file.GetStringOrNull($"{arch}.rope.scaling.type");
        // Linear and YaRN scaling both stretch the rope by their factor; YaRN then ramps some pairs back.
        if (scalingType is "linear" or "yarn")
        {
            if (!file.TryGetFloat($"{arch}.rope.scaling.factor", out float factor) || !(factor > 0) || !float.IsFinite(factor))
                throw new ModelFormatException($"{file.Path}: rope scaling is {scalingType} but '{arch}.rope.scaling.factor' is missing or not a positive finite number");
            freqScale = 1f / factor;
        }
        if (scalingType is "yarn")
        {
            // A later llama.cpp writes a magnitude of its own for some models; its meaning is not settled here, so a file
            // that gives one is refused rather than run with a magnitude that may be wrong.
            if (file.TryGetFloat($"{arch}.rope.scaling.yarn_attn_factor", out float yarnAttn) && yarnAttn != 1f)
                throw new ModelFormatException($"{file.Path}: metadata '{arch}.rope.scaling.yarn_attn_factor' = {yarnAttn} is not supported (only 1)");
            float extrapolation = file.TryGetFloat($"{arch}.rope.scaling.yarn_ext_factor", out float ext) ? ext : 1f;
            if (!float.IsFinite(extrapolation) || extrapolation < 0)
                throw new ModelFormatException($"{file.Path}: metadata '{arch}.rope.scaling.yarn_ext_factor' = {extrapolation} is not a finite number >= 0");
            yarn = new YarnScaling(extrapolation, Positive("rope.scaling.yarn_beta_fast", 32f), Positive("rope.scaling.yarn_beta_slow", 1f),
                Count("rope.scaling.original_context_length") ?? ctx);
        }
        else if (scalingType is not (null or "none" or "linear") && !(scalingType is "longrope" && arch == "phi3"))
        {
            throw new ModelFormatException($"{file.Path}: rope scaling type '{PrintableText.Of(scalingType)}' is not supported " +
                $"for {arch} (supported: none, linear, yarn, llama3 via rope_freqs{(arch == "phi3" ? ", longrope" : "")})");
        }
        // Phi-3 128k files carry their LongRoPE factor tables without a scaling type (convert_hf_to_gguf writes none).
        bool longRope = scalingType is "longrope" || file.HasTensor("rope_factors_long.weight") || file.HasTensor("rope_factors_short.weight");
        float attnFactor = Positive("rope.scaling.attn_factor", 1f);

        var token = file.GetArrayOrNull("tokenizer.ggml.tokens");
        int vocab = Count("vocab_size")
            ?? token?.Length ?? (int)(file.FindTensor("token_embd.weight")?.Dimensions is { Length: 2 } d ? Math.Min(d[1], int.MaxValue) : 0);

        bool gemma = arch is "gemma" or "gemma2" or "gemma3";
        // 0 means no window (convert_hf_to_gguf writes it for Phi-4, whose config has none).
        int? window = file.TryGetInt64($"{arch}.attention.sliding_window", out long sw) && sw == 0 ? null
            : Count("attention.sliding_window") ?? (arch == "gemma2" ? 4096 : arch == "cohere2" ? Required("attention.sliding_window") : null);
        // The 27B Gemma 2 (46 layers) and Gemma 3 (62 layers) scale queries by their query_pre_attn_scalar.
        bool gemma27B = arch == "gemma2" && layers == 46 || arch == "gemma3" && layers == 62;

        // These architectures always have experts; llama has them where the file says so (Mixtral).
        int experts = arch is "qwen3moe" or "qwen2moe" or "granitemoe" or "olmoe" or "deepseek2" or "gpt-oss" ? Required("expert_count") : Count("expert_count") ?? 0;
        int expertsUsed = experts > 0 ? Required("expert_used_count") : Count("expert_used_count") ?? 0;
        // MiniCPM is llama's blocks with Granite's three multipliers (llama.cpp reads the same keys, and requires them for it).
        bool granite = arch is "granite" or "granitemoe" or "minicpm";
        float Multiplier(string suffix) => arch == "minicpm" ? RequiredPositive(suffix) : Positive(suffix, 1f);

        // Qwen2-VL's text: M-RoPE gives a text token the same position in its time, height and width sections, which is
        // NeoX rope at that position; a fourth section (text positions leave it at 0: unrotated dimensions) is not supported.
        if (arch == "qwen2vl")
        {
            int[] sections = file.GetInt32Array("qwen2vl.rope.dimension_sections")
                ?? throw new ModelFormatException($"{file.Path}: metadata 'qwen2vl.rope.dimension_sections' is missing");
            if (sections.Length != 4 || sections.Any(x => x < 0) || sections[..3].Sum() == 0)
                throw new ModelFormatException($"{file.Path}: metadata 'qwen2vl.rope.dimension_sections' = [{string.Join(", ", sections)}] is not four non-negative sections");
            if (sections[3] != 0)
                throw new ModelFormatException($"{file.Path}: metadata 'qwen2vl.rope.dimension_sections' = [{string.Join(", ", sections)}] has a fourth section, which KvSharp does not run (its dimensions would not rotate for text)");
        }
        var config = new ModelConfig
        {
            Architecture = arch,
            Name = file.GetStringOrNull("general.name") ?? System.IO.Path.GetFileNameWithoutExtension(file.Path),
            EmbeddingDim = embd,
            LayerCount = layers,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            FeedForwardDim = ffn,
            VocabSize = vocab,
            TrainedContextLength = ctx,
            SlidingWindow = window,
            // Of each group of layers, all but the last attend through the window (cohere2: three of four, as llama.cpp
            // b4748 hard-codes it); the last attends to everything, and in cohere2 without rotation (below).
            SlidingWindowPattern = arch switch { "gemma2" => 2, "gemma3" => 6, "cohere2" => 4, _ => 0 },
            LocalRopeTheta = arch == "gemma3" ? 10000f : null,
            EmbeddingScale = gemma ? MathF.Sqrt(embd) : granite ? Multiplier("embedding_scale") : 1f,
            ResidualScale = granite ? Multiplier("residual_scale") : 1f,
            // Granite divides its logits by logit_scale; Command-R multiplies them by its own.
            LogitScale = granite ? Multiplier("logit_scale") : cohere ? 1f / RequiredPositive("logit_scale") : 1f,
            Activation = gemma || gpt2 || arch is "phi2" or "starcoder2" or "gptneox" or "falcon" ? FeedForwardActivation.GeluTanh : FeedForwardActivation.Silu,
            LayerNorm = layerNorm,
            GatedFeedForward = !gpt2 && arch is not ("phi2" or "starcoder2" or "gptneox" or "falcon"),
            ParallelFeedForward = arch is "phi2" or "falcon" || cohere || arch == "stablelm" && !file.HasTensor("blk.0.ffn_norm.weight") || neoxParallel,
            // Falcon-40B normalises the attention's input with attn_norm_2 and the feed-forward's with attn_norm.
            ParallelFeedForwardNorm = neoxParallel || arch == "falcon" && file.HasTensor("blk.0.attn_norm_2.weight"),
            LearnedPositions = learnedPositions,
            HasPostNorms = arch is "gemma2" or "gemma3" or "olmo2",
            HasPreNorms = arch != "olmo2",
            // Gemma 2's caps default to llama.cpp's 50 and 30; Gemma 3 caps its logits only where the file says so.
            AttentionSoftCap = arch == "gemma2" ? Positive("attn_logit_softcapping", 50f) : 0f,
            FinalLogitSoftCap = arch is "gemma2" or "gemma3" ? Positive("final_logit_softcapping", arch == "gemma2" ? 30f : 0f) : 0f,
            AttentionScaleOverride = gemma27B ? 1f / MathF.Sqrt(embd / heads)
                : granite && file.TryGetFloat($"{arch}.attention.scale", out _) ? Positive("attention.scale", 1f) : null,
            RmsNormEps = eps,
            RopeTheta = theta,
            RopeStyle = arch is "qwen2" or "qwen2vl" or "qwen2moe" or "qwen3" or "qwen3moe" or "phi3" or "olmo2" or "olmoe" or "exaone" or "phi2" or "starcoder2" or "stablelm" or "gptneox" or "falcon" || gemma
                ? RopeStyle.NeoX : RopeStyle.Normal,
            RopeDimensions = ropeDim,
            RopeFrequencyScale = freqScale,
            RopeAttentionFactor = attnFactor,
            LongRope = longRope,
            Yarn = yarn,
            RopeOriginalContextLength = Count("rope.scaling.original_context_length"),
            HasQkvBias = arch is "qwen2" or "qwen2vl" or "qwen2moe",
            HasQkNorm = arch is "qwen3" or "qwen3moe" or "gemma3" or "olmo2" or "olmoe",
            QkNormOverWhole = arch is "olmo2" or "olmoe",
            NoRopeLayerStep = arch is "smollm3" or "cohere2" ? 4 : 0,
            ExpertCount = experts,
            ExpertsUsed = expertsUsed,
            ExpertFeedForwardDim = experts > 0 ? Count("expert_feed_forward_length") ?? ffn : 0,
            // A shared expert in the file needs its width named; a width named needs the shared expert's tensors (the loader).
            SharedExpertFeedForwardDim = experts == 0 ? 0
                : file.HasTensor("blk.0.ffn_gate_shexp.weight") ? Required("expert_shared_feed_forward_length")
                : Count("expert_shared_feed_forward_length") ?? 0,
            // llama.cpp: Mixtral (llama), Granite-MoE and Qwen3-MoE normalise the chosen weights.
            NormalizeExpertWeights = experts > 0 && arch is "llama" or "granitemoe" or "qwen3moe",
        };
        if (arch == "deepseek2") config = DeepSeek2(file, config, Count, Required, Positive);
        if (arch == "gpt-oss") config = GptOss(file, config, Count);
        config.Validate(file.Path);
        return config;
    }

    /// <summary>Checks that the numbers agree with one another.</summary>
    public void Validate(string source)
    {
        void Fail(string what) => throw new ModelFormatException($"{source}: {what}");
        if (EmbeddingDim <= 0 || LayerCount <= 0 || HeadCount <= 0 || KvHeadCount <= 0 || HeadDim <= 0 || FeedForwardDim <= 0)
            Fail($"non-positive dimension (embedding {EmbeddingDim}, layers {LayerCount}, heads {HeadCount}, kv heads {KvHeadCount}, head dim {HeadDim}, ffn {FeedForwardDim})");
        if (VocabSize <= 0) Fail($"vocabulary size {VocabSize} is not positive");
        if (ExpertCount > 0 && (ExpertsUsed < 1 || ExpertsUsed > ExpertCount || ExpertFeedForwardDim <= 0))
            Fail($"a mixture of {ExpertCount} experts needs 1 to {ExpertCount} experts per token (expert_used_count {ExpertsUsed}) and a positive expert width ({ExpertFeedForwardDim})");
        if (ExpertCount == 0 && ExpertsUsed > 0) Fail($"expert_used_count {ExpertsUsed} without expert_count");
        if (HeadCount % KvHeadCount != 0) Fail($"head count {HeadCount} is not a multiple of the KV head count {KvHeadCount}");
        if (HeadDim % 2 != 0) Fail($"head dimension {HeadDim} is odd; rotary embedding needs pairs");
        if (LearnedPositions ? RopeDimensions != 0 : RopeDimensions <= 0 || RopeDimensions > HeadDim || RopeDimensions % 2 != 0)
            Fail(LearnedPositions ? $"a model with learned positions rotates nothing, but its rope dimension count is {RopeDimensions}"
                : $"rope dimension count {RopeDimensions} must be even and at most the head dimension {HeadDim}");
        if (!(RmsNormEps > 0) || !(RopeTheta > 0) || !float.IsFinite(RmsNormEps) || !float.IsFinite(RopeTheta))
            Fail($"rms epsilon {RmsNormEps} and rope base {RopeTheta} must be positive and finite");
    }
}
