using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// gpt-oss GGUF files built from llama-gqa.F32 byte-deterministically: its embedding, output, norms (ffn_norm as
/// post_attention_norm) and q/k/v/output matrices (8 heads, 2 KV heads of 32), with
/// - q/k/v and attention output biases (small deterministic waves);
/// - learned sink logits per head and layer (-2.5 to 4.5, on scores whose largest are about 3-4: some heads give most
///   of their attention to the sink, some almost none);
/// - a 16-position window on layer 0 (the even layers: gpt-oss's default pattern of 2), layer 1 attending to everything;
/// - four experts, two per token: expert x's gate, up and down are llama-gqa's feed-forward matrices with their rows
///   rotated by 37x, 53x and 11x (as the Mixtral variant's), stored as F32 or MXFP4 (the name's last part), with gate
///   and up biases that include values of ±9 (so the SwiGLU's clamp at 7 acts on some units) and down biases; an F32
///   router of deterministic waves with a bias;
/// - "gpt-oss-yarn" also has YaRN rope scaling as the released files do (4x from 128 positions here, 32x from 4,096 there).
/// The golden logits come from an independent pure-Python port of OpenAI's reference model (gpt_oss/torch/model.py, in
/// float64) over the same file: tests/KvSharp.Tests/Models/Architectures/gpt-oss-reference.py.
/// </summary>
public static class GptOssVariants
{
    public const int Experts = 4, ExpertsUsed = 2, Window = 16;

    public static void Write(ArchitectureVariants.Variant v, string path)
    {
        var expertType = Enum.Parse<GgmlType>(v.Name.Split('.')[^1]);
        using var g = GgufFile.Open(TestPaths.Fixture(v.Source));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
        {
            if (key == "general.alignment") continue;
            var value = key == "general.architecture" ? GgufValue.Of("gpt-oss") : g.Metadata[key];
            w.Add(key.StartsWith("llama.", StringComparison.Ordinal) ? "gpt-oss" + key["llama".Length..] : key, value);
        }
        int e = (int)(g.TryGetInt64("llama.embedding_length", out long el) ? el : 0);
        int ffn = (int)(g.TryGetInt64("llama.feed_forward_length", out long fl) ? fl : 0);
        int heads = (int)(g.TryGetInt64("llama.attention.head_count", out long hc) ? hc : 0);
        w.Add("gpt-oss.expert_count", (uint)Experts);
        w.Add("gpt-oss.expert_used_count", (uint)ExpertsUsed);
        w.Add("gpt-oss.expert_feed_forward_length", (uint)ffn);
        w.Add("gpt-oss.attention.sliding_window", (uint)Window);
        if (v.Yarn)
        {
            // As the released files (YaRN 32x from 4,096), scaled down: 4x from a 128-token original context.
            w.Add("gpt-oss.rope.scaling.type", "yarn");
            w.Add("gpt-oss.rope.scaling.factor", 4f);
            w.Add("gpt-oss.rope.scaling.original_context_length", (uint)ArchitectureVariants.YarnOriginalContext);
        }

        ArchitectureVariants.CopyWithBlocks(g, w, (t, layer, p, rest) =>
        {
            string name = t.Name;
            byte[] Bytes() => g.GetTensorBytes(t).ToArray();
            long outputs = t.Dimensions[^1];
            switch (rest)
            {
                case "ffn_norm.weight":
                    w.AddTensor(p + "post_attention_norm.weight", t.Type, t.Dimensions, Bytes());
                    return;
                case "attn_q.weight" or "attn_k.weight" or "attn_v.weight" or "attn_output.weight":
                    w.AddTensor(name, t.Type, t.Dimensions, Bytes());
                    w.AddTensor(p + rest.Replace(".weight", ".bias"), [outputs], Waves((int)outputs, 0.15f, 0.4f * rest.Length + layer));
                    if (rest == "attn_output.weight")
                        w.AddTensor(p + "attn_sinks.weight", [heads], Enumerable.Range(0, heads).Select(h => -2.5f + (h * 3 + layer * 5) % 8).ToArray());
                    return;
                case "ffn_gate.weight" or "ffn_up.weight" or "ffn_down.weight":
                    WriteExperts(w, g, t, p, rest[4..^7], layer, e, expertType);
                    return;
                default:
                    w.AddTensor(name, t.Type, t.Dimensions, Bytes());
                    return;
            }
        });
        w.Write(path);
    }

    /// <summary>One feed-forward matrix as the experts' 3-D tensor and its biases; the router with the gate.</summary>
    private static void WriteExperts(GgufWriter w, GgufFile g, GgufTensorInfo t, string p, string part, int layer, int e, GgmlType type)
    {
        int step = part == "gate" ? 37 : part == "up" ? 53 : 11;
        int cols = (int)t.Dimensions[0], rows = (int)t.Dimensions[1];
        var source = new float[cols * rows];
        Dequantize.Row(t.Type, g.GetTensorBytes(t), source);
        int rowBytes = (int)GgmlTypes.RowBytes(type, cols);
        var all = new byte[(long)rowBytes * rows * Experts];
        for (int x = 0; x < Experts; x++)
            for (int r = 0; r < rows; r++)
                Quantize.Row(type, source.AsSpan((r + x * step) % rows * cols, cols), all.AsSpan((x * rows + r) * rowBytes, rowBytes));
        w.AddTensor(p + $"ffn_{part}_exps.weight", type, [cols, rows, Experts], all);
        // Biases per expert; gate's and up's have every 41st unit at ±9, beyond the clamp.
        var bias = new float[rows * Experts];
        for (int x = 0; x < Experts; x++)
            for (int r = 0; r < rows; r++)
                bias[x * rows + r] = part != "down" && (r + 7 * x) % 41 == 0 ? (part == "gate" ? 9f : (r / 41 % 2 == 0 ? 9f : -9f))
                    : 0.3f * MathF.Sin(0.77f * r + 1.9f * x + part.Length + layer);
        w.AddTensor(p + $"ffn_{part}_exps.bias", [rows, Experts], bias);
        if (part == "gate")
        {
            w.AddTensor(p + "ffn_gate_inp.weight", [e, Experts],
                Enumerable.Range(0, e * Experts).Select(i => 2f / MathF.Sqrt(e) * MathF.Sin(0.37f * (i % e) + 1.3f * (i / e) + 0.1f * (i % 7) + layer)).ToArray());
            w.AddTensor(p + "ffn_gate_inp.bias", [Experts], [0.2f, -0.3f, 0.1f, 0f]);
        }
    }

    private static float[] Waves(int n, float size, float phase) => Enumerable.Range(0, n).Select(i => size * MathF.Sin(phase + 0.53f * i)).ToArray();
}
