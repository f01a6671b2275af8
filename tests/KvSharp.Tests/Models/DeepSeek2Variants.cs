using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// deepseek2 GGUF files (multi-head latent attention, leading dense layers, experts with a shared one) built from
/// llama-gqa.F32's embedding, output, norms and feed-forwards, byte-deterministically, with the latent attention's
/// matrices as deterministic waves scaled by 1 / sqrt(their input width):
/// 8 heads with 32 unrotated and 16 rotated key dimensions and 32 value dimensions, a latent of 64, a query rank of 96;
/// YaRN 4x from a 128-token original context with DeepSeek's log multiplier (0.0707); layer 0 dense, layer 1 four
/// experts (llama-gqa's layer-1 matrices with their rows rotated, as the Mixtral variant's), two per token, and a
/// shared expert (the layer's own matrices).
/// - "deepseek2" is DeepSeek V2's routing (softmax, weights scaled by 1.5, not normalised), in the older layout
///   llama.cpp b4748 reads (one attn_kv_b per layer);
/// - "deepseek2-v3" is DeepSeek V3's (sigmoid, a selection bias, weights normalised then scaled by 2.5);
/// - "deepseek2-split" is the first in the layout llama.cpp writes since its latent cache (attn_k_b and attn_v_b, one
///   KV head of 80, key_length_mla and value_length_mla): the same model, so llama.cpp's logits for "deepseek2" hold.
/// </summary>
public static class DeepSeek2Variants
{
    public const int Heads = 8, Nope = 32, Rope = 16, ValueDim = 32, KvRank = 64, QueryRank = 96, Experts = 4, ExpertsUsed = 2;

    public static void Write(ArchitectureVariants.Variant v, string path)
    {
        bool v3 = v.Name.StartsWith("deepseek2-v3"), split = v.Name.StartsWith("deepseek2-split");
        using var g = GgufFile.Open(TestPaths.Fixture(v.Source));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
        {
            if (key is "general.alignment" or "llama.attention.head_count_kv" or "llama.rope.dimension_count") continue;
            var value = key == "general.architecture" ? GgufValue.Of("deepseek2") : g.Metadata[key];
            w.Add(key.StartsWith("llama.", StringComparison.Ordinal) ? "deepseek2" + key["llama".Length..] : key, value);
        }
        int e = (int)(g.TryGetInt64("llama.embedding_length", out long el) ? el : 0);
        int ffn = (int)(g.TryGetInt64("llama.feed_forward_length", out long fl) ? fl : 0);
        w.Add("deepseek2.attention.head_count_kv", split ? 1u : (uint)Heads);
        w.Add("deepseek2.attention.key_length", split ? (uint)(KvRank + Rope) : (uint)(Nope + Rope));
        w.Add("deepseek2.attention.value_length", split ? (uint)KvRank : (uint)ValueDim);
        if (split)
        {
            w.Add("deepseek2.attention.key_length_mla", (uint)(Nope + Rope));
            w.Add("deepseek2.attention.value_length_mla", (uint)ValueDim);
        }
        w.Add("deepseek2.rope.dimension_count", (uint)Rope);
        w.Add("deepseek2.attention.q_lora_rank", (uint)QueryRank);
        w.Add("deepseek2.attention.kv_lora_rank", (uint)KvRank);
        w.Add("deepseek2.leading_dense_block_count", 1u);
        w.Add("deepseek2.expert_count", (uint)Experts);
        w.Add("deepseek2.expert_used_count", (uint)ExpertsUsed);
        w.Add("deepseek2.expert_feed_forward_length", (uint)ffn);
        w.Add("deepseek2.expert_shared_count", 1u);
        w.Add("deepseek2.expert_weights_scale", v3 ? 2.5f : 1.5f);
        w.Add("deepseek2.expert_weights_norm", v3);
        w.Add("deepseek2.expert_gating_func", v3 ? 2u : 1u);
        w.Add("deepseek2.rope.scaling.type", "yarn");
        w.Add("deepseek2.rope.scaling.factor", 4f);
        w.Add("deepseek2.rope.scaling.original_context_length", 128u);
        w.Add("deepseek2.rope.scaling.yarn_log_multiplier", 0.0707f);

        ArchitectureVariants.CopyWithBlocks(g, w, (t, layer, p, rest) =>
        {
            string name = t.Name;
            byte[] Bytes() => g.GetTensorBytes(t).ToArray();
            if (rest is "attn_q.weight" or "attn_k.weight" or "attn_v.weight" or "attn_output.weight") return;
            if (rest is "attn_norm.weight" or "ffn_norm.weight") { w.AddTensor(name, t.Type, t.Dimensions, Bytes()); }
            if (rest == "attn_norm.weight") WriteAttention(w, p, layer, e, split);
            if (rest is not ("ffn_gate.weight" or "ffn_up.weight" or "ffn_down.weight")) return;
            if (layer == 0) { w.AddTensor(name, t.Type, t.Dimensions, Bytes()); return; }
            // Layer 1: the experts (rows rotated per expert), the shared expert (the matrix itself) and the router.
            string part = rest[4..^7];
            int step = part == "gate" ? 37 : part == "up" ? 53 : 11;
            byte[] data = Bytes();
            long rows = t.Dimensions[1];
            int rowBytes = (int)(data.Length / rows);
            var all = new byte[data.Length * Experts];
            for (int x = 0; x < Experts; x++)
                for (long r = 0; r < rows; r++)
                    Array.Copy(data, (r + (long)x * step) % rows * rowBytes, all, (x * rows + r) * rowBytes, rowBytes);
            w.AddTensor(p + $"ffn_{part}_exps.weight", t.Type, [t.Dimensions[0], rows, Experts], all);
            w.AddTensor(p + $"ffn_{part}_shexp.weight", t.Type, t.Dimensions, data);
            if (part == "gate")
            {
                w.AddTensor(p + "ffn_gate_inp.weight", [e, Experts],
                    Enumerable.Range(0, e * Experts).Select(i => 2f / MathF.Sqrt(e) * MathF.Sin(0.37f * (i % e) + 1.3f * (i / e) + 0.1f * (i % 7))).ToArray());
                if (v3) w.AddTensor(p + "exp_probs_b.bias", [Experts], [0.05f, -0.1f, 0.2f, 0f]);
            }
        });
        w.Write(path);
    }

    /// <summary>Deterministic waves of <paramref name="count"/> values, about 1 / sqrt(fanIn) in size.</summary>
    private static float[] Waves(int count, int fanIn, float seed) =>
        Enumerable.Range(0, count).Select(i => 1.7f / MathF.Sqrt(fanIn) * MathF.Sin(0.7131f * i + seed) * MathF.Cos(0.0173f * i + 2.1f * seed)).ToArray();

    private static void WriteAttention(GgufWriter w, string p, int layer, int e, bool split)
    {
        float s = 1 + layer;
        w.AddTensor(p + "attn_q_a.weight", [e, QueryRank], Waves(e * QueryRank, e, 0.3f * s));
        w.AddTensor(p + "attn_q_a_norm.weight", [QueryRank], Enumerable.Range(0, QueryRank).Select(i => 1f + 0.2f * MathF.Sin(0.41f * i + s)).ToArray());
        w.AddTensor(p + "attn_q_b.weight", [QueryRank, Heads * (Nope + Rope)], Waves(QueryRank * Heads * (Nope + Rope), QueryRank, 0.9f * s));
        w.AddTensor(p + "attn_kv_a_mqa.weight", [e, KvRank + Rope], Waves(e * (KvRank + Rope), e, 1.7f * s));
        w.AddTensor(p + "attn_kv_a_norm.weight", [KvRank], Enumerable.Range(0, KvRank).Select(i => 1f + 0.2f * MathF.Cos(0.53f * i + s)).ToArray());
        // attn_kv_b: per head, its key rows then its value rows, each a row of the latent's width.
        float[] kvb = Waves(KvRank * Heads * (Nope + ValueDim), KvRank, 2.3f * s);
        if (!split) w.AddTensor(p + "attn_kv_b.weight", [KvRank, Heads * (Nope + ValueDim)], kvb);
        else
        {
            // The same matrices split as llama.cpp's converter splits them: attn_k_b holds each head's key rows
            // transposed ([nope, latent, heads]), attn_v_b its value rows as they are ([latent, value, heads]).
            var kb = new float[Heads * KvRank * Nope];
            var vb = new float[Heads * ValueDim * KvRank];
            for (int h = 0; h < Heads; h++)
            {
                int first = h * (Nope + ValueDim);
                for (int j = 0; j < Nope; j++)
                    for (int x = 0; x < KvRank; x++) kb[(h * KvRank + x) * Nope + j] = kvb[(first + j) * KvRank + x];
                Array.Copy(kvb, (first + Nope) * KvRank, vb, h * ValueDim * KvRank, ValueDim * KvRank);
            }
            w.AddTensor(p + "attn_k_b.weight", [Nope, KvRank, Heads], kb);
            w.AddTensor(p + "attn_v_b.weight", [KvRank, ValueDim, Heads], vb);
        }
        w.AddTensor(p + "attn_output.weight", [Heads * ValueDim, e], Waves(Heads * ValueDim * e, Heads * ValueDim, 3.1f * s));
    }
}
