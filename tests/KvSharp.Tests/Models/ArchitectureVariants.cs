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
/// The metadata keys are renamed from the source architecture's prefix; the tokenizer is copied unchanged.
/// </summary>
public static class ArchitectureVariants
{
    public sealed record Variant(string Name, string Source, string Architecture, int? SlidingWindow = null, bool LongRope = false)
    {
        public override string ToString() => Name;
    }

    public static readonly Variant Phi3F32 = new("phi3.F32", "llama-gqa.F32.gguf", "phi3");
    public static readonly Variant Phi3Q8 = new("phi3.Q8_0", "llama-gqa.Q8_0.gguf", "phi3");
    public static readonly Variant Phi3Window = new("phi3-window24.F32", "llama-gqa.F32.gguf", "phi3", SlidingWindow: 24);
    public static readonly Variant Phi3LongRope = new("phi3-longrope.F32", "llama-gqa.F32.gguf", "phi3", LongRope: true);
    public static readonly Variant Qwen3F32 = new("qwen3.F32", "qwen2-bias.F32.gguf", "qwen3");
    public static readonly Variant Qwen3Q8 = new("qwen3.Q8_0", "qwen2-bias.Q8_0.gguf", "qwen3");

    /// <summary>The original context LongRoPE variants claim: a session of 64 tokens fits it, one of 512 needs the long factors.</summary>
    public const int LongRopeOriginalContext = 128;
    public const float LongRopeAttentionFactor = 1.1902380714238083f;

    /// <summary>Writes the variant to a file in the temporary folder (once per process) and returns its path.</summary>
    public static string Path(Variant v)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-arch-{v.Name}-{Environment.ProcessId}.gguf");
        lock (v)
        {
            if (!File.Exists(path)) Write(v, path);
        }
        return path;
    }

    public static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private static void Write(Variant v, string path)
    {
        using var g = GgufFile.Open(TestPaths.Fixture(v.Source));
        string from = (string)g.Metadata["general.architecture"].Value;
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
        {
            if (key == "general.alignment") continue;
            var value = key == "general.architecture" ? GgufValue.Of(v.Architecture) : g.Metadata[key];
            w.Add(key.StartsWith(from + ".", StringComparison.Ordinal) ? v.Architecture + key[from.Length..] : key, value);
        }
        if (v.Architecture == "phi3")
        {
            // llama.cpp b4748 needs a sliding window for phi3 (its defaults are for 32- and 40-layer models only).
            w.Add("phi3.attention.sliding_window", (uint)(v.SlidingWindow ?? 4096));
            if (v.LongRope)
            {
                w.Add("phi3.rope.scaling.type", "longrope");
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
            if (v.Architecture == "qwen3" && name.EndsWith(".bias")) continue;
            w.AddTensor(name, t.Type, t.Dimensions, Bytes(name));
            if (v.Architecture == "qwen3" && name.EndsWith(".attn_norm.weight"))
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
