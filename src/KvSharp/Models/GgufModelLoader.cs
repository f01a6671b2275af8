using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// Builds <see cref="ModelWeights"/> from a GGUF file's tensors (llama.cpp naming), checking that every tensor
/// exists, has the shape the metadata implies, and has a type we can compute with.
/// </summary>
public static unsafe class GgufModelLoader
{
    public static ModelWeights Load(GgufFile file, ModelConfig c)
    {
        using var copies = new InterleavedCopies((p, bytes) => file.AdviseNotNeeded((byte*)p, bytes));
        var weights = Load(file, c, copies);
        copies.Keep();
        return weights;
    }

    /// <summary>
    /// The checks <see cref="Load"/> makes (every tensor present, shaped as the metadata says, of a type we can compute
    /// with, norms finite) without copying any weights: what `kvsharp inspect` runs before it sizes a cache from the
    /// metadata, so a damaged block_count or embedding_length is reported instead of believed.
    /// </summary>
    public static void Validate(GgufFile file, ModelConfig c) => Load(file, c, copies: null);

    /// <summary>With <paramref name="copies"/> null the matrices stay views of the file (validation only).</summary>
    private static ModelWeights Load(GgufFile file, ModelConfig c, InterleavedCopies? copies)
    {
        int e = c.EmbeddingDim, q = c.QueryDim, kv = c.KvDim, f = c.FeedForwardDim, v = c.VocabSize;
        // Matmul weights get interleaved copies; the token embedding is only looked up row by row (unless tied).
        WeightMatrix Matrix(string name, int cols, int rows) =>
            copies == null ? MatrixView(file, name, cols, rows) : copies.Interleave(MatrixView(file, name, cols, rows));

        if (file.Tensors.Count == 0)
            throw new ModelFormatException($"{file.Path}: a vocab-only GGUF file (no tensors): it can tokenize (kvsharp tokenize --model) but has no weights to run");
        var tokenEmbedding = MatrixView(file, "token_embd.weight", e, v);
        // The last block's tensors must be there before block_count sizes anything (a damaged count can be 2^31 - 1).
        string lastBlock = $"blk.{c.LayerCount - 1}.attn_norm.weight";
        if (!file.HasTensor(lastBlock))
            throw new ModelFormatException($"{file.Path}: metadata says {c.LayerCount} blocks but tensor '{lastBlock}' is missing");
        if (file.HasTensor($"blk.{c.LayerCount}.attn_norm.weight"))
            throw new ModelFormatException($"{file.Path}: metadata says {c.LayerCount} blocks but the file has tensors for block {c.LayerCount}");
        var layers = new LayerWeights[c.LayerCount];
        for (int i = 0; i < c.LayerCount; i++)
        {
            string p = $"blk.{i}.";
            layers[i] = new LayerWeights
            {
                AttentionNorm = Vector(file, p + "attn_norm.weight", e),
                Query = Matrix(p + "attn_q.weight", e, q),
                Key = Matrix(p + "attn_k.weight", e, kv),
                Value = Matrix(p + "attn_v.weight", e, kv),
                AttentionOutput = Matrix(p + "attn_output.weight", q, e),
                QueryBias = OptionalVector(file, p + "attn_q.bias", q, c.HasQkvBias),
                KeyBias = OptionalVector(file, p + "attn_k.bias", kv, c.HasQkvBias),
                ValueBias = OptionalVector(file, p + "attn_v.bias", kv, c.HasQkvBias),
                FeedForwardNorm = Vector(file, p + "ffn_norm.weight", e),
                Gate = Matrix(p + "ffn_gate.weight", e, f),
                Up = Matrix(p + "ffn_up.weight", e, f),
                Down = Matrix(p + "ffn_down.weight", f, e),
            };
        }
        var outputNorm = Vector(file, "output_norm.weight", e);
        bool tied = !file.HasTensor("output.weight");
        var output = !tied ? Matrix("output.weight", e, v) : copies?.Interleave(tokenEmbedding, lookedUp: true) ?? tokenEmbedding;
        float[]? ropeFactors = file.HasTensor("rope_freqs.weight") ? Vector(file, "rope_freqs.weight", c.RopeDimensions / 2) : null;
        return new ModelWeights(file, tokenEmbedding, layers, outputNorm, output, tied, ropeFactors);
    }

    private static GgufTensorInfo Tensor(GgufFile file, string name)
    {
        var t = file.FindTensor(name) ?? throw new ModelFormatException($"{file.Path}: tensor '{name}' is missing");
        if (!GgmlTypes.IsSupportedWeight(t.Type))
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has type {t.Type}, which KvSharp cannot compute with " +
                "(supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, Q4_1, IQ4_NL, IQ4_XS)");
        return t;
    }

    /// <summary>A matrix with GGUF shape [cols, rows] (ne0 = the input dimension, contiguous).</summary>
    private static WeightMatrix MatrixView(GgufFile file, string name, int cols, int rows)
    {
        var t = Tensor(file, name);
        if (t.Dimensions.Length != 2 || t.Dimensions[0] != cols || t.Dimensions[1] != rows)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{cols}, {rows}] from the metadata");
        return new WeightMatrix(t.Type, rows, cols, file.GetTensorPointer(t));
    }

    private static float[] Vector(GgufFile file, string name, int length)
    {
        var t = Tensor(file, name);
        if (t.ElementCount != length || t.Dimensions.Length != 1)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{length}] from the metadata");
        var values = new float[length];
        Dequantize.Row(t.Type, file.GetTensorBytes(t), values);
        foreach (float x in values)
            if (!float.IsFinite(x)) throw new ModelFormatException($"{file.Path}: tensor '{name}' contains a non-finite value {x}");
        return values;
    }

    private static float[]? OptionalVector(GgufFile file, string name, int length, bool required)
    {
        if (file.HasTensor(name)) return Vector(file, name, length);
        if (required) throw new ModelFormatException($"{file.Path}: tensor '{name}' is missing");
        return null;
    }
}
