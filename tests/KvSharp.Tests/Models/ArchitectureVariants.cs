using System.Security.Cryptography;
using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// GGUF files of other architectures derived from the shared llama.cpp fixtures, byte-deterministically (their SHA-256
/// is checked beside the llama.cpp logits recorded for them, so a change here cannot silently compare against a
/// reference made from another file):
/// - phi3: llama-gqa's weights with q, k and v fused into attn_qkv and gate and up into ffn_up (gate's rows first), as
///   Phi-3 files store them; NeoX rope; optionally a sliding window and LongRoPE (short and long factor tables, an
///   original context and an attention factor).
/// - qwen3: qwen2-bias's weights without the q/k/v biases, with per-head q and k norms (1 + small deterministic offsets).
/// - qwen2vl: qwen2-bias as Qwen2-VL's text model (M-RoPE sections 8/12/12/0 over the head's 32 pairs).
/// - gemma, gemma2, gemma3: a fixture's layers repeated (<see cref="Variant.Repeat"/>: llama.cpp b4748 only runs a
///   Gemma 2 of 26, 42 or 46 layers), the output tied to the embedding, post-attention and post-feed-forward norms
///   (gemma2/3), per-head q/k norms (gemma3), a 24-position window on the local layers, small soft caps (gemma2: 2 on
///   scores, 5 on logits, so they bend what they touch) and Gemma 3's two rope bases with a linear scaling of 8.
/// - granite: llama-gqa with Granite's four multipliers (embedding 12, residual 0.22, attention 0.25, logits 8); minicpm
///   with MiniCPM's three (embedding 12, residual 1.4 / sqrt(layers), logits 1).
/// - llama with an attention output bias (attn_output.bias, ±0.05..0.25), which llama.cpp's llama also reads, and
///   llama with feed-forward biases (ffn_gate.bias, ffn_up.bias, ffn_down.bias), which it reads too.
/// - mixtures of experts (Mixtral's llama with 4 experts, 2 per token; qwen3moe with 8, 3 per token): expert x's gate,
///   up and down are the source's matrices with their rows rotated by 37x, 53x and 11x rows (whole rows, so any weight
///   type), and an F32 router of deterministic waves; qwen2moe also has a shared expert (the source's own gate, up and
///   down) gated by a sigmoid of a router row.
/// - olmo2: llama-tied (multi-head, as b4748's olmo2 needs) without the pre-norms, with post-attention and
///   post-feed-forward norms and q/k norms over the whole vectors, and an output matrix copied from the embedding.
/// - exaone: llama-gqa as EXAONE 3.5 (llama's blocks with NeoX rope).
/// - smollm3: llama-gqa's two layers twice, so the fourth is a NoPE layer.
/// - granitemoe: granite's multipliers with 4 experts, 2 per token.
/// - olmoe: llama-tied (multi-head) with q/k norms over the whole vectors and 4 experts, 2 per token (not normalised),
///   and an output matrix copied from the embedding (b4748's olmoe needs one).
/// - the LayerNorm architectures, from llama-gqa: every norm with a bias (small deterministic waves), and
///   - phi2: q, k and v fused with a fused bias, attention output, feed-forward and classifier biases, the feed-forward
///     ungated (up, GELU, down; the gate dropped) and in parallel with the attention, NeoX rope over half of each head;
///   - starcoder2: separate q/k/v with biases, attention output and ungated feed-forward biases, NeoX rope;
///   - gpt2 (and starcoder, the first StarCoder, the same blocks): fused q/k/v with a bias, biases as starcoder2's, no rope
///     but a learned position embedding of 512 rows;
///   - stablelm: q/k/v biases, the llama SwiGLU feed-forward without biases, NeoX rope over a quarter of each head;
///   - gptneox (Pythia): fused q/k/v with a bias, biases everywhere, an ungated GELU feed-forward, NeoX rope over a quarter
///     of each head; the parallel residual (the feed-forward normalising the stream the attention read) or, in the
///     "-seq" file, the sequential one;
///   - falcon: fused q/k/v and every other matrix without a bias, an ungated GELU feed-forward in parallel sharing the
///     attention's norm, or (the "-40b" file) normalising the stream with attn_norm while the attention reads
///     attn_norm_2 (the source's ffn_norm);
///   - command-r: norms without biases, no biases, a SwiGLU feed-forward in parallel sharing the attention's norm, the
///     output tied to the embedding and logits times logit_scale 0.0625;
///   - cohere2 (Command R7B): command-r's block over the fixture's layers twice (4 layers), the first three of each four
///     rotating and attending through a 24-position window, the fourth attending to everything without rotation.
/// - llama and qwen2 with YaRN rope scaling (factor 4 from a 128-token original context), unchanged otherwise.
/// The metadata keys are renamed from the source architecture's prefix; the tokenizer is copied unchanged.
/// </summary>
public static class ArchitectureVariants
{
    public sealed record Variant(string Name, string Source, string Architecture, int? SlidingWindow = null, bool LongRope = false, int Repeat = 1,
        int Experts = 0, int ExpertsUsed = 0, bool Yarn = false)
    {
        public override string ToString() => Name;
    }

    public static readonly Variant Phi3F32 = new("phi3.F32", "llama-gqa.F32.gguf", "phi3");
    public static readonly Variant Phi3Q8 = new("phi3.Q8_0", "llama-gqa.Q8_0.gguf", "phi3");
    public static readonly Variant Phi3Window = new("phi3-window24.F32", "llama-gqa.F32.gguf", "phi3", SlidingWindow: 24);
    public static readonly Variant Phi3LongRope = new("phi3-longrope.F32", "llama-gqa.F32.gguf", "phi3", LongRope: true);
    public static readonly Variant Qwen3F32 = new("qwen3.F32", "qwen2-bias.F32.gguf", "qwen3");
    public static readonly Variant Qwen3Q8 = new("qwen3.Q8_0", "qwen2-bias.Q8_0.gguf", "qwen3");
    public static readonly Variant Qwen2VlF32 = new("qwen2vl.F32", "qwen2-bias.F32.gguf", "qwen2vl");
    public static readonly Variant GemmaF32 = new("gemma.F32", "llama-tied.F32.gguf", "gemma");
    public static readonly Variant Gemma2Q8 = new("gemma2-26l.Q8_0", "llama-tied.Q8_0.gguf", "gemma2", SlidingWindow: 24, Repeat: 13);
    public static readonly Variant Gemma3F32 = new("gemma3-6l.F32", "llama-gqa.F32.gguf", "gemma3", SlidingWindow: 24, Repeat: 3);
    public static readonly Variant Gemma3Q8 = new("gemma3-6l.Q8_0", "llama-gqa.Q8_0.gguf", "gemma3", SlidingWindow: 24, Repeat: 3);

    public static readonly Variant GraniteF32 = new("granite.F32", "llama-gqa.F32.gguf", "granite");
    public static readonly Variant MiniCpmQ8 = new("minicpm.Q8_0", "llama-gqa.Q8_0.gguf", "minicpm");
    public static readonly Variant LlamaOutputBiasF32 = new("llama-output-bias.F32", "llama-gqa.F32.gguf", "llama");
    public static readonly Variant LlamaMlpBiasQ8 = new("llama-mlp-bias.Q8_0", "llama-gqa.Q8_0.gguf", "llama");

    public static readonly Variant MixtralF32 = new("mixtral-4x2.F32", "llama-gqa.F32.gguf", "llama", Experts: 4, ExpertsUsed: 2);
    public static readonly Variant MixtralQ8 = new("mixtral-4x2.Q8_0", "llama-gqa.Q8_0.gguf", "llama", Experts: 4, ExpertsUsed: 2);
    public static readonly Variant Qwen3MoeF32 = new("qwen3moe-8x3.F32", "qwen2-bias.F32.gguf", "qwen3moe", Experts: 8, ExpertsUsed: 3);
    public static readonly Variant Qwen3MoeQ8 = new("qwen3moe-8x3.Q8_0", "qwen2-bias.Q8_0.gguf", "qwen3moe", Experts: 8, ExpertsUsed: 3);
    public static readonly Variant Qwen2MoeF32 = new("qwen2moe-4x2.F32", "qwen2-bias.F32.gguf", "qwen2moe", Experts: 4, ExpertsUsed: 2);
    public static readonly Variant Olmo2F32 = new("olmo2.F32", "llama-tied.F32.gguf", "olmo2");
    public static readonly Variant ExaoneQ8 = new("exaone.Q8_0", "llama-gqa.Q8_0.gguf", "exaone");
    public static readonly Variant SmolLm3F32 = new("smollm3-4l.F32", "llama-gqa.F32.gguf", "smollm3", Repeat: 2);
    public static readonly Variant GraniteMoeQ8 = new("granitemoe-4x2.Q8_0", "llama-gqa.Q8_0.gguf", "granitemoe", Experts: 4, ExpertsUsed: 2);
    public static readonly Variant OlmoeF32 = new("olmoe-4x2.F32", "llama-tied.F32.gguf", "olmoe", Experts: 4, ExpertsUsed: 2);
    public static readonly Variant Phi2F32 = new("phi2.F32", "llama-gqa.F32.gguf", "phi2");
    public static readonly Variant Phi2Q8 = new("phi2.Q8_0", "llama-gqa.Q8_0.gguf", "phi2");
    public static readonly Variant StarCoder2F32 = new("starcoder2.F32", "llama-gqa.F32.gguf", "starcoder2");
    public static readonly Variant Gpt2F32 = new("gpt2.F32", "llama-gqa.F32.gguf", "gpt2");
    public static readonly Variant StarCoderQ8 = new("starcoder.Q8_0", "llama-gqa.Q8_0.gguf", "starcoder");
    public static readonly Variant StableLmQ8 = new("stablelm.Q8_0", "llama-gqa.Q8_0.gguf", "stablelm");
    public static readonly Variant GptNeoXF32 = new("gptneox.F32", "llama-gqa.F32.gguf", "gptneox");
    public static readonly Variant GptNeoXSeqQ8 = new("gptneox-seq.Q8_0", "llama-gqa.Q8_0.gguf", "gptneox");
    public static readonly Variant FalconF32 = new("falcon.F32", "llama-gqa.F32.gguf", "falcon");
    public static readonly Variant Falcon40BQ8 = new("falcon-40b.Q8_0", "llama-gqa.Q8_0.gguf", "falcon");
    public static readonly Variant CommandRF32 = new("command-r.F32", "llama-gqa.F32.gguf", "command-r");
    public static readonly Variant Cohere2F32 = new("cohere2-4l.F32", "llama-gqa.F32.gguf", "cohere2", SlidingWindow: 24, Repeat: 2);
    public static readonly Variant LlamaYarnF32 = new("llama-yarn.F32", "llama-gqa.F32.gguf", "llama", Yarn: true);
    public static readonly Variant Qwen2YarnQ8 = new("qwen2-yarn.Q8_0", "qwen2-bias.Q8_0.gguf", "qwen2", Yarn: true);
    public static readonly Variant DeepSeek2F32 = new("deepseek2.F32", "llama-gqa.F32.gguf", "deepseek2");
    public static readonly Variant DeepSeek2V3F32 = new("deepseek2-v3.F32", "llama-gqa.F32.gguf", "deepseek2");
    public static readonly Variant DeepSeek2SplitF32 = new("deepseek2-split.F32", "llama-gqa.F32.gguf", "deepseek2");
    public static readonly Variant GptOssF32 = new("gpt-oss.F32", "llama-gqa.F32.gguf", "gpt-oss");
    public static readonly Variant GptOssMxfp4 = new("gpt-oss.MXFP4", "llama-gqa.F32.gguf", "gpt-oss");
    public static readonly Variant GptOssYarnMxfp4 = new("gpt-oss-yarn.MXFP4", "llama-gqa.F32.gguf", "gpt-oss", Yarn: true);

    public static readonly Variant[] All =
        [Phi3F32, Phi3Q8, Phi3Window, Phi3LongRope, Qwen3F32, Qwen3Q8, GemmaF32, Gemma2Q8, Gemma3F32, Gemma3Q8, GraniteF32, LlamaOutputBiasF32,
         MixtralF32, MixtralQ8, Qwen3MoeF32, Qwen3MoeQ8, Qwen2MoeF32, Olmo2F32, ExaoneQ8, SmolLm3F32, GraniteMoeQ8, OlmoeF32,
         Phi2F32, Phi2Q8, StarCoder2F32, Gpt2F32, StableLmQ8, LlamaMlpBiasQ8, GptNeoXF32, GptNeoXSeqQ8, FalconF32, Falcon40BQ8, CommandRF32,
         Cohere2F32, StarCoderQ8, MiniCpmQ8, Qwen2VlF32, LlamaYarnF32, Qwen2YarnQ8,
         DeepSeek2F32, DeepSeek2V3F32, DeepSeek2SplitF32, GptOssF32, GptOssMxfp4, GptOssYarnMxfp4];

    private static bool IsLayerNorm(Variant v) => v.Architecture is "phi2" or "starcoder2" or "gpt2" or "starcoder" or "stablelm" or "gptneox" or "falcon" or "command-r" or "cohere2";

    /// <summary>The original context LongRoPE variants claim: a session of 64 tokens fits it, one of 512 needs the long factors.</summary>
    public const int LongRopeOriginalContext = 128;
    public const float LongRopeAttentionFactor = 1.1902380714238083f;
    /// <summary>The original context the YaRN variants were stretched from (4x, to the fixtures' 512).</summary>
    public const int YarnOriginalContext = 128;

    /// <summary>Writes the variant to a file in the temporary folder (once per process) and returns its path.</summary>
    public static string Path(Variant v)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-arch-{v.Name}-{Environment.ProcessId}.gguf");
        lock (v)
        {
            if (!File.Exists(path))
            {
                if (v.Architecture == "deepseek2") DeepSeek2Variants.Write(v, path);
                else if (v.Architecture == "gpt-oss") GptOssVariants.Write(v, path);
                else Write(v, path);
            }
        }
        return path;
    }

    /// <summary>
    /// Copies every tensor outside the blocks as it is, and hands each block tensor to <paramref name="block"/> with its
    /// layer, its "blk.N." prefix and the rest of its name (the architectures written from scratch: deepseek2, gpt-oss).
    /// </summary>
    internal static void CopyWithBlocks(GgufFile g, GgufWriter w, Action<GgufTensorInfo, int, string, string> block)
    {
        foreach (var t in g.Tensors)
        {
            if (!t.Name.StartsWith("blk.")) { w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray()); continue; }
            int dot = t.Name.IndexOf('.', 4), layer = int.Parse(t.Name[4..dot]);
            block(t, layer, $"blk.{layer}.", t.Name[(dot + 1)..]);
        }
    }

    public static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private static void Write(Variant v, string path)
    {
        using var g = GgufFile.Open(TestPaths.Fixture(v.Source));
        string from = (string)g.Metadata["general.architecture"].Value;
        var w = new GgufWriter(g.Alignment, g.Version);
        bool gemma = v.Architecture.StartsWith("gemma");
        int sourceLayers = (int)(g.TryGetInt64(from + ".block_count", out long bc) ? bc : throw new InvalidDataException("no block count"));
        foreach (var key in g.MetadataKeys)
        {
            if (key == "general.alignment") continue;
            var value = key == "general.architecture" ? GgufValue.Of(v.Architecture)
                : key == from + ".block_count" ? GgufValue.Of((uint)(sourceLayers * v.Repeat))
                // Partial rotation: phi2 turns half of each 32-wide head, stablelm a quarter.
                : key == from + ".rope.dimension_count" && v.Architecture is "phi2" or "stablelm" or "gptneox" ? GgufValue.Of(v.Architecture == "phi2" ? 16u : 8u)
                : key == from + ".rope.freq_base" && v.Architecture == "gemma3" ? GgufValue.Of(1_000_000f)
                : g.Metadata[key];
            w.Add(key.StartsWith(from + ".", StringComparison.Ordinal) ? v.Architecture + key[from.Length..] : key, value);
        }
        if (v.Architecture is "gemma2" or "gemma3" or "cohere2") w.Add(v.Architecture + ".attention.sliding_window", (uint)v.SlidingWindow!.Value);
        if (IsLayerNorm(v)) w.Add(v.Architecture + ".attention.layer_norm_epsilon", 1e-5f);
        if (v.Architecture == "gptneox") w.Add("gptneox.use_parallel_residual", !v.Name.Contains("-seq"));
        if (v.Architecture is "command-r" or "cohere2") w.Add(v.Architecture + ".logit_scale", 0.0625f);
        // Qwen2-VL's M-RoPE sections over the 32 pairs of a 64-wide head (time, height, width, none).
        if (v.Architecture == "qwen2vl") w.Add("qwen2vl.rope.dimension_sections", GgufValue.Of([8, 12, 12, 0]));
        if (v.Architecture == "gemma2")
        {
            w.Add("gemma2.attn_logit_softcapping", 2f);
            w.Add("gemma2.final_logit_softcapping", 5f);
        }
        if (v.Experts > 0)
        {
            w.Add(v.Architecture + ".expert_count", (uint)v.Experts);
            w.Add(v.Architecture + ".expert_used_count", (uint)v.ExpertsUsed);
            if (v.Architecture is "qwen3moe" or "qwen2moe")
                w.Add(v.Architecture + ".expert_feed_forward_length", (uint)(g.TryGetInt64(from + ".feed_forward_length", out long ff) ? ff : 0));
            if (v.Architecture == "qwen2moe")
                w.Add("qwen2moe.expert_shared_feed_forward_length", (uint)(g.TryGetInt64(from + ".feed_forward_length", out long fs) ? fs : 0));
        }
        if (v.Architecture is "granite" or "granitemoe" or "minicpm")
        {
            // MiniCPM's as convert_hf_to_gguf writes them for a 2-layer model: scale_emb 12, scale_depth 1.4 / sqrt(2),
            // hidden 256 / dim_model_base 256; no attention scale.
            bool minicpm = v.Architecture == "minicpm";
            w.Add(v.Architecture + ".embedding_scale", 12f);
            w.Add(v.Architecture + ".residual_scale", minicpm ? 1.4f / MathF.Sqrt(2) : 0.22f);
            if (!minicpm) w.Add(v.Architecture + ".attention.scale", 0.25f);
            w.Add(v.Architecture + ".logit_scale", minicpm ? 1f : 8f);
        }
        if (v.Yarn)
        {
            // Stretched 4x from a 128-token original context: with 32- and 64-wide heads the ramp spans pairs 0-6 or 0-7,
            // so some pairs keep their trained angle, some are interpolated and some are mixed.
            w.Add(v.Architecture + ".rope.scaling.type", "yarn");
            w.Add(v.Architecture + ".rope.scaling.factor", 4f);
            w.Add(v.Architecture + ".rope.scaling.original_context_length", (uint)YarnOriginalContext);
        }
        if (v.Architecture == "gemma3")
        {
            w.Add("gemma3.rope.scaling.type", "linear");
            w.Add("gemma3.rope.scaling.factor", 8f);
        }
        if (v.Architecture == "phi3")
        {
            // llama.cpp b4748 needs a sliding window for phi3 (its defaults are for 32- and 40-layer models only). LongRoPE
            // files carry no rope.scaling.type, as convert_hf_to_gguf writes them: the factor tables say it.
            w.Add("phi3.attention.sliding_window", (uint)(v.SlidingWindow ?? 4096));
            if (v.LongRope)
            {
                w.Add("phi3.rope.scaling.original_context_length", (uint)LongRopeOriginalContext);
                w.Add("phi3.rope.scaling.attn_factor", LongRopeAttentionFactor);
            }
        }

        var byName = g.Tensors.ToDictionary(t => t.Name);
        byte[] Bytes(string name) => g.GetTensorBytes(byName[name]).ToArray();
        long[] Dims(string name) => byName[name].Dimensions;
        foreach (var t in g.Tensors)
        {
            string name = t.Name;
            if (gemma || v.Repeat > 1)
            {
                if (name == "output.weight" && (gemma || v.Architecture == "cohere2")) continue; // tied to the embedding
                if (name.StartsWith("blk."))
                {
                    int dot = name.IndexOf('.', 4), layer = int.Parse(name[4..dot]);
                    string rest = name[(dot + 1)..];
                    if (rest == "ffn_norm.weight" && v.Architecture == "cohere2") continue; // the feed-forward shares the attention's norm
                    int headDim = HeadDim(g, from), e = (int)(g.TryGetInt64(from + ".embedding_length", out long el) ? el : 0);
                    for (int r = 0; r < v.Repeat; r++)
                    {
                        string p = $"blk.{layer + r * sourceLayers}.";
                        w.AddTensor(p + rest, t.Type, t.Dimensions, Bytes(name));
                        if (rest != "attn_norm.weight") continue;
                        if (v.Architecture is "gemma2" or "gemma3")
                        {
                            w.AddTensor(p + "post_attention_norm.weight", [e], Offsets(e, 0.3f + r));
                            w.AddTensor(p + "post_ffw_norm.weight", [e], Offsets(e, 2.1f + r));
                        }
                        if (v.Architecture == "gemma3")
                        {
                            w.AddTensor(p + "attn_q_norm.weight", [headDim], Offsets(headDim, 0.7f + r));
                            w.AddTensor(p + "attn_k_norm.weight", [headDim], Offsets(headDim, 1.3f + r));
                        }
                    }
                    continue;
                }
            }
            if (v.Architecture == "phi3")
            {
                // Fused where the first part stands; the other parts are written inside it.
                if (name.EndsWith(".attn_k.weight") || name.EndsWith(".attn_v.weight") || name.EndsWith(".ffn_gate.weight")) continue;
                if (name.EndsWith(".attn_q.weight"))
                {
                    string p = name[..^"attn_q.weight".Length];
                    Fuse(w, p + "attn_qkv.weight", t.Type, Dims(name)[0], [Bytes(name), Bytes(p + "attn_k.weight"), Bytes(p + "attn_v.weight")],
                        Dims(name)[1] + Dims(p + "attn_k.weight")[1] + Dims(p + "attn_v.weight")[1]);
                    continue;
                }
                if (name.EndsWith(".ffn_up.weight"))
                {
                    string p = name[..^"ffn_up.weight".Length];
                    Fuse(w, name, t.Type, Dims(name)[0], [Bytes(p + "ffn_gate.weight"), Bytes(name)], 2 * Dims(name)[1]);
                    continue;
                }
            }
            if (v.Architecture is "qwen3" or "qwen3moe" && name.EndsWith(".bias")) continue;
            if (IsLayerNorm(v))
            {
                WriteLayerNormTensor(w, v, g, t, Bytes, Dims);
                continue;
            }
            // OLMo 2 and OLMoE: q/k norms over the whole vectors and an output matrix of their own (b4748 needs one);
            // OLMo 2 also trades its pre-norms for post-norms.
            if (v.Architecture is "olmo2" or "olmoe")
            {
                int e = (int)(g.TryGetInt64(from + ".embedding_length", out long oe) ? oe : 0);
                bool olmo2 = v.Architecture == "olmo2";
                if (name.EndsWith(".attn_norm.weight"))
                {
                    string p = name[..^"attn_norm.weight".Length];
                    if (olmo2)
                    {
                        w.AddTensor(p + "post_attention_norm.weight", [e], Offsets(e, 0.5f));
                        w.AddTensor(p + "post_ffw_norm.weight", [e], Offsets(e, 1.7f));
                    }
                    w.AddTensor(p + "attn_q_norm.weight", [e], Offsets(e, 0.9f));
                    w.AddTensor(p + "attn_k_norm.weight", [e], Offsets(e, 2.3f));
                    if (olmo2) continue;
                }
                if (olmo2 && name.EndsWith(".ffn_norm.weight")) continue;
                if (name == "token_embd.weight") w.AddTensor("output.weight", t.Type, t.Dimensions, Bytes(name));
            }
            if (v.Experts > 0 && (name.EndsWith(".ffn_gate.weight") || name.EndsWith(".ffn_up.weight") || name.EndsWith(".ffn_down.weight")))
            {
                string part = name.EndsWith(".ffn_gate.weight") ? "gate" : name.EndsWith(".ffn_up.weight") ? "up" : "down";
                int step = part == "gate" ? 37 : part == "up" ? 53 : 11;
                byte[] data = Bytes(name);
                long rows = t.Dimensions[1];
                int rowBytes = (int)(data.Length / rows);
                var all = new byte[data.Length * v.Experts];
                for (int x = 0; x < v.Experts; x++)
                    for (long r = 0; r < rows; r++)
                        Array.Copy(data, (r + (long)x * step) % rows * rowBytes, all, (x * rows + r) * rowBytes, rowBytes);
                w.AddTensor(name.Replace($".ffn_{part}.weight", $".ffn_{part}_exps.weight"), t.Type, [t.Dimensions[0], rows, v.Experts], all);
                if (v.Architecture == "qwen2moe")
                {
                    w.AddTensor(name.Replace($".ffn_{part}.weight", $".ffn_{part}_shexp.weight"), t.Type, t.Dimensions, data);
                    if (part == "gate")
                    {
                        int e = (int)t.Dimensions[0];
                        w.AddTensor(name.Replace(".ffn_gate.weight", ".ffn_gate_inp_shexp.weight"), [e],
                            Enumerable.Range(0, e).Select(i => 1.5f / MathF.Sqrt(e) * MathF.Cos(0.29f * i + 0.4f)).ToArray());
                    }
                }
                if (part == "gate")
                {
                    int e = (int)t.Dimensions[0];
                    w.AddTensor(name.Replace(".ffn_gate.weight", ".ffn_gate_inp.weight"), [e, v.Experts],
                        Enumerable.Range(0, e * v.Experts).Select(i => 2f / MathF.Sqrt(e) * MathF.Sin(0.37f * (i % e) + 1.3f * (i / e) + 0.1f * (i % 7))).ToArray());
                }
                continue;
            }
            w.AddTensor(name, t.Type, t.Dimensions, Bytes(name));
            if (v == LlamaMlpBiasQ8 && (name.EndsWith(".ffn_gate.weight") || name.EndsWith(".ffn_up.weight") || name.EndsWith(".ffn_down.weight")))
            {
                int outputs = (int)t.Dimensions[1];
                w.AddTensor(name[..^".weight".Length] + ".bias", [outputs],
                    Enumerable.Range(0, outputs).Select(i => 0.15f * MathF.Sin(0.61f * i + name.Length)).ToArray());
            }
            if (v == LlamaOutputBiasF32 && name.EndsWith(".attn_output.weight"))
            {
                int e = (int)t.Dimensions[1];
                w.AddTensor(name[..^".weight".Length] + ".bias", [e],
                    Enumerable.Range(0, e).Select(i => (i % 2 == 0 ? 1 : -1) * (0.05f + 0.2f * ((i * 37) % 101) / 100f)).ToArray());
            }
            if (v.Architecture is "qwen3" or "qwen3moe" && name.EndsWith(".attn_norm.weight"))
            {
                string p = name[..^"attn_norm.weight".Length];
                int headDim = HeadDim(g, from);
                w.AddTensor(p + "attn_q_norm.weight", [headDim], Offsets(headDim, 0.7f));
                w.AddTensor(p + "attn_k_norm.weight", [headDim], Offsets(headDim, 1.3f));
            }
        }
        if (v.LongRope)
        {
            int pairs = HeadDim(g, from) / 2;
            // Short factors near 1, long ones growing towards the slow frequencies, as Phi-3's tables do.
            w.AddTensor("rope_factors_short.weight", [pairs], Enumerable.Range(0, pairs).Select(i => 1f + 0.05f * i / pairs).ToArray());
            w.AddTensor("rope_factors_long.weight", [pairs], Enumerable.Range(0, pairs).Select(i => 1f + 15f * i * i / (pairs * pairs)).ToArray());
        }
        w.Write(path);
    }

    /// <summary>One source tensor as a LayerNorm architecture has it, with the biases and fused or dropped parts that brings.</summary>
    private static void WriteLayerNormTensor(GgufWriter w, Variant v, GgufFile g, GgufTensorInfo t, Func<string, byte[]> bytes, Func<string, long[]> dims)
    {
        string name = t.Name, arch = v.Architecture;
        bool fused = arch is "phi2" or "gpt2" or "starcoder" or "gptneox" or "falcon", ungated = arch is not ("stablelm" or "command-r" or "cohere2");
        // Falcon and Command-R have no biases but their norms' (Command-R not even those).
        bool biased = arch is not ("falcon" or "command-r" or "cohere2"), normBiased = arch is not ("command-r" or "cohere2");
        string p = name.StartsWith("blk.") ? name[..(name.IndexOf('.', 4) + 1)] : "";
        int layer = p.Length > 0 ? int.Parse(p[4..^1]) : 0;
        void Bias(string tensor, long n, float phase) => w.AddTensor(tensor, [n], Enumerable.Range(0, (int)n)
            .Select(i => 0.1f * MathF.Sin(phase + 0.7f * layer + 0.53f * i)).ToArray());
        // A feed-forward sharing the attention's norm has none of its own; Falcon-40B's is attn_norm, its attention's attn_norm_2.
        if (name.EndsWith(".ffn_norm.weight") && (arch is "phi2" or "command-r" or "cohere2" || arch == "falcon" && v.Name.Contains("-40b") == false)) return;
        if (name == "output.weight" && arch is "command-r" or "cohere2") return; // tied
        if (name.EndsWith(".ffn_norm.weight") && arch == "falcon")
        {
            w.AddTensor(p + "attn_norm_2.weight", t.Type, t.Dimensions, bytes(name));
            Bias(p + "attn_norm_2.bias", t.Dimensions[0], 1.3f);
            return;
        }
        if (name.EndsWith(".ffn_gate.weight") && ungated) return;
        if (fused && (name.EndsWith(".attn_k.weight") || name.EndsWith(".attn_v.weight"))) return;
        if (fused && name.EndsWith(".attn_q.weight"))
        {
            long rows = dims(name)[1] + dims(p + "attn_k.weight")[1] + dims(p + "attn_v.weight")[1];
            Fuse(w, p + "attn_qkv.weight", t.Type, dims(name)[0], [bytes(name), bytes(p + "attn_k.weight"), bytes(p + "attn_v.weight")], rows);
            if (biased) Bias(p + "attn_qkv.bias", rows, 0.4f);
            return;
        }
        w.AddTensor(name, t.Type, t.Dimensions, bytes(name));
        string stem = name[..^".weight".Length];
        long outputs = t.Dimensions.Length > 1 ? t.Dimensions[1] : t.Dimensions[0];
        if (name.EndsWith("_norm.weight")) { if (normBiased) Bias(stem + ".bias", outputs, 1.1f); }
        else if (!biased) { }
        else if (name.EndsWith(".attn_q.weight") || name.EndsWith(".attn_k.weight") || name.EndsWith(".attn_v.weight")) Bias(stem + ".bias", outputs, 2.3f);
        else if (name.EndsWith(".attn_output.weight") && arch != "stablelm") Bias(stem + ".bias", outputs, 0.9f);
        else if ((name.EndsWith(".ffn_up.weight") || name.EndsWith(".ffn_down.weight")) && ungated) Bias(stem + ".bias", outputs, 1.7f);
        else if (name == "output.weight" && arch == "phi2") Bias("output.bias", outputs, 0.2f);
        else if (name == "token_embd.weight" && arch is "gpt2" or "starcoder")
        {
            long e = t.Dimensions[0], positions = g.TryGetInt64("llama.context_length", out long c) ? c : 0;
            w.AddTensor("position_embd.weight", [e, positions], Enumerable.Range(0, (int)(e * positions))
                .Select(i => 0.3f * MathF.Sin(0.011f * (i / e) * (1 + i % e) + 0.13f * (i % e))).ToArray());
        }
    }

    private static int HeadDim(GgufFile g, string arch) =>
        g.TryGetInt64(arch + ".embedding_length", out long e) && g.TryGetInt64(arch + ".attention.head_count", out long h) ? (int)(e / h)
            : throw new InvalidDataException($"{g.Path}: no embedding length or head count");

    /// <summary>1 + a small deterministic wave: norm weights that differ per dimension and per tensor.</summary>
    private static float[] Offsets(int n, float phase) => Enumerable.Range(0, n).Select(i => 1f + 0.2f * MathF.Sin(phase + 0.37f * i)).ToArray();

    private static void Fuse(GgufWriter w, string name, GgmlType type, long cols, byte[][] parts, long rows)
    {
        var data = new byte[parts.Sum(p => p.Length)];
        int at = 0;
        foreach (var p in parts)
        {
            p.CopyTo(data, at);
            at += p.Length;
        }
        w.AddTensor(name, type, [cols, rows], data);
    }
}
