using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// Builds <see cref="ModelWeights"/> from a GGUF file's tensors (llama.cpp naming), checking that every tensor
/// exists, has the shape the metadata implies, and has a type we can compute with.
/// </summary>
public static unsafe class GgufModelLoader
{
    /// <param name="contextLength">The longest context sessions will use: picks a LongRoPE model's rope factors.</param>
    public static ModelWeights Load(GgufFile file, ModelConfig c, int? contextLength = null)
    {
        using var copies = new InterleavedCopies((p, bytes) => file.AdviseNotNeeded((byte*)p, bytes));
        var weights = Load(file, c, copies, contextLength);
        copies.Keep();
        return weights;
    }

    /// <summary>
    /// The checks <see cref="Load"/> makes (every tensor present, shaped as the metadata says, of a type we can compute
    /// with, norms finite) without copying any weights: what `kvsharp inspect` runs before it sizes a cache from the
    /// metadata, so a damaged block_count or embedding_length is reported instead of believed.
    /// </summary>
    public static void Validate(GgufFile file, ModelConfig c) => Load(file, c, copies: null, contextLength: null);

    /// <summary>With <paramref name="copies"/> null the matrices stay views of the file (validation only).</summary>
    private static ModelWeights Load(GgufFile gguf, ModelConfig c, InterleavedCopies? copies, int? contextLength)
    {
        var file = new Reads(gguf);
        int e = c.EmbeddingDim, q = c.QueryDim, kv = c.KvDim, f = c.FeedForwardDim, v = c.VocabSize;
        // Matmul weights get interleaved copies; the token embedding is only looked up row by row (unless tied).
        WeightMatrix Interleave(WeightMatrix m) => copies == null ? m : copies.Interleave(m);
        WeightMatrix Matrix(string name, int cols, int rows) => Interleave(MatrixView(file, name, cols, rows));

        if (gguf.Tensors.Count == 0)
            throw new ModelFormatException($"{file.Path}: a vocab-only GGUF file (no tensors): it can tokenize (kvsharp tokenize --model) but has no weights to run");
        var tokenEmbedding = MatrixView(file, "token_embd.weight", e, v);
        // The last block's tensors must be there before block_count sizes anything (a damaged count can be 2^31 - 1).
        string blockTensor = c.HasPreNorms ? "attn_norm.weight" : "attn_output.weight";
        string lastBlock = $"blk.{c.LayerCount - 1}.{blockTensor}";
        if (!file.Has(lastBlock))
            throw new ModelFormatException($"{file.Path}: metadata says {c.LayerCount} blocks but tensor '{lastBlock}' is missing");
        if (file.Has($"blk.{c.LayerCount}.{blockTensor}"))
            throw new ModelFormatException($"{file.Path}: metadata says {c.LayerCount} blocks but the file has tensors for block {c.LayerCount}");
        // A mixture of experts: the router, then each expert's three matrices as views of its slice of the 3-D tensors.
        MixtureOfExperts Experts(string p)
        {
            int n = c.ExpertCount, fe = c.ExpertFeedForwardDim;
            return new MixtureOfExperts
            {
                Router = Matrix(p + "ffn_gate_inp.weight", e, n),
                Gate = ExpertViews(file, p + "ffn_gate_exps.weight", e, fe, n).Select(Interleave).ToArray(),
                Up = ExpertViews(file, p + "ffn_up_exps.weight", e, fe, n).Select(Interleave).ToArray(),
                Down = ExpertViews(file, p + "ffn_down_exps.weight", fe, e, n).Select(Interleave).ToArray(),
                Shared = c.SharedExpertFeedForwardDim is > 0 and int fs
                    ? new SharedExpert(c.SharedExpertGated ? Interleave(RowVector(file, p + "ffn_gate_inp_shexp.weight", e)) : default,
                        Matrix(p + "ffn_gate_shexp.weight", e, fs), Matrix(p + "ffn_up_shexp.weight", e, fs), Matrix(p + "ffn_down_shexp.weight", fs, e))
                    : null,
                SelectionBias = c.ExpertGating == ExpertGating.Sigmoid ? OptionalVector(file, p + "exp_probs_b.bias", n, required: false) : null,
                RouterBias = c.HasExpertBiases ? Vector(file, p + "ffn_gate_inp.bias", n) : null,
                Biases = c.HasExpertBiases
                    ? new ExpertBiases(VectorRows(file, p + "ffn_gate_exps.bias", fe, n), VectorRows(file, p + "ffn_up_exps.bias", fe, n), VectorRows(file, p + "ffn_down_exps.bias", e, n))
                    : null,
            };
        }
        // A bias is the model's, not a layer's: phi2, starcoder2 and gpt2 have them on q/k/v, the attention output and the
        // feed-forward (as llama.cpp requires); in other files a bias the first block has, every block must have.
        bool blockBiases = c.LayerNorm && c.Architecture is not ("stablelm" or "falcon" or "command-r" or "cohere2");
        // Which bias tensors an architecture reads at all (llama.cpp's): others in a file are refused by name.
        bool readsQkvBias = c.Architecture != "falcon", readsOutputBias = c.Architecture is not ("stablelm" or "falcon");
        // Command-R's norms have no biases; Falcon-40B's attention reads attn_norm_2 and its feed-forward attn_norm.
        bool normBiases = c.LayerNorm && c.Architecture is not ("command-r" or "cohere2"), falcon40B = c.Architecture == "falcon" && c.ParallelFeedForwardNorm;
        // gpt-oss names the feed-forward's norm post_attention_norm (it comes after the attention, before the experts).
        string attentionNorm = falcon40B ? "attn_norm_2" : "attn_norm", feedForwardNorm = falcon40B ? "attn_norm" : c.Architecture == "gpt-oss" ? "post_attention_norm" : "ffn_norm";
        bool Biased(string suffix) => blockBiases || file.Has("blk.0." + suffix);
        var layers = new LayerWeights[c.LayerCount];
        for (int i = 0; i < c.LayerCount; i++)
        {
            string p = $"blk.{i}.";
            // phi3 stores q, k and v as one matrix (attn_qkv, their rows one after another) and gate and up as one
            // (ffn_up, gate's rows first): each part is a view of its rows, multiplied like a matrix of its own.
            if (c.LatentAttention is { } mla)
            {
                layers[i] = LatentLayer(file, c, mla, p, Interleave, c.LayerHasExperts(i) ? Experts(p) : null);
                continue;
            }
            if (!file.Has(p + "attn_qkv.weight") && !file.Has(p + "attn_q.weight"))
                throw new ModelFormatException($"{file.Path}: tensor '{p}attn_q.weight' is missing (and no fused '{p}attn_qkv.weight' holds q, k and v)");
            bool fused = file.Has(p + "attn_qkv.weight");
            var (query, key, value) = fused
                ? SplitRows(file, p + "attn_qkv.weight", e, q, kv, kv) is var qkv ? (qkv[0], qkv[1], qkv[2]) : default
                : (MatrixView(file, p + "attn_q.weight", e, q), MatrixView(file, p + "attn_k.weight", e, kv), MatrixView(file, p + "attn_v.weight", e, kv));
            // A fused bias (phi2, gpt2) is split as its matrix's rows are.
            float[]? qkvBias = fused && readsQkvBias ? OptionalVector(file, p + "attn_qkv.bias", q + 2 * kv, Biased("attn_qkv.bias")) : null;
            var experts = c.LayerHasExperts(i) ? Experts(p) : null;
            // phi2, starcoder2 and gpt2's feed-forward is up alone, with biases; a dense llama's may have biases (llama.cpp
            // reads them where present).
            bool ungated = experts == null && !c.GatedFeedForward, ffnBiases = ungated && blockBiases || experts == null && c.Architecture == "llama";
            var (gate, up) = experts != null ? default
                : ungated ? (default, MatrixView(file, p + "ffn_up.weight", e, f))
                : !file.Has(p + "ffn_gate.weight") && c.Architecture == "phi3"
                ? SplitRows(file, p + "ffn_up.weight", e, f, f) is var gu ? (gu[0], gu[1]) : default
                : (MatrixView(file, p + "ffn_gate.weight", e, f), MatrixView(file, p + "ffn_up.weight", e, f));
            // A LayerNorm model's norms have biases (required by llama.cpp except where a file may leave them out).
            float[]? NormBias(string name) => normBiases ? OptionalVector(file, p + name, e, required: true) : null;
            layers[i] = new LayerWeights
            {
                AttentionNorm = c.HasPreNorms ? Vector(file, p + attentionNorm + ".weight", e) : null,
                AttentionNormBias = NormBias(attentionNorm + ".bias"),
                Query = Interleave(query),
                Key = Interleave(key),
                Value = Interleave(value),
                AttentionOutput = Matrix(p + "attn_output.weight", q, e),
                OutputBias = readsOutputBias ? OptionalVector(file, p + "attn_output.bias", e, Biased("attn_output.bias")) : null,
                QueryBias = qkvBias?[..q] ?? OptionalVector(file, p + "attn_q.bias", q, c.HasQkvBias || Biased("attn_q.bias")),
                KeyBias = qkvBias?[q..(q + kv)] ?? OptionalVector(file, p + "attn_k.bias", kv, c.HasQkvBias || Biased("attn_k.bias")),
                ValueBias = qkvBias?[(q + kv)..] ?? OptionalVector(file, p + "attn_v.bias", kv, c.HasQkvBias || Biased("attn_v.bias")),
                SinkLogits = c.HasLearnedSinks ? Vector(file, p + "attn_sinks.weight", c.HeadCount) : null,
                QueryNorm = c.HasQkNorm ? Vector(file, p + "attn_q_norm.weight", c.QkNormOverWhole ? q : c.HeadDim) : null,
                KeyNorm = c.HasQkNorm ? Vector(file, p + "attn_k_norm.weight", c.QkNormOverWhole ? kv : c.HeadDim) : null,
                AttentionPostNorm = c.HasPostNorms ? Vector(file, p + "post_attention_norm.weight", e) : null,
                // A parallel feed-forward reads the attention's normalised input unless it has a norm of its own (GPT-NeoX).
                FeedForwardNorm = c.HasPreNorms && (!c.ParallelFeedForward || c.ParallelFeedForwardNorm) ? Vector(file, p + feedForwardNorm + ".weight", e) : null,
                FeedForwardNormBias = c.ParallelFeedForward && !c.ParallelFeedForwardNorm ? null : NormBias(feedForwardNorm + ".bias"),
                FeedForwardPostNorm = c.HasPostNorms ? Vector(file, p + "post_ffw_norm.weight", e) : null,
                Gate = experts == null && !ungated ? Interleave(gate) : default,
                Up = experts == null ? Interleave(up) : default,
                Down = experts == null ? Matrix(p + "ffn_down.weight", f, e) : default,
                GateBias = ffnBiases && !ungated ? OptionalVector(file, p + "ffn_gate.bias", f, Biased("ffn_gate.bias")) : null,
                UpBias = ffnBiases ? OptionalVector(file, p + "ffn_up.bias", f, Biased("ffn_up.bias")) : null,
                DownBias = ffnBiases ? OptionalVector(file, p + "ffn_down.bias", e, Biased("ffn_down.bias")) : null,
                Experts = experts,
            };
        }
        var outputNorm = Vector(file, "output_norm.weight", e);
        var outputNormBias = normBiases ? Vector(file, "output_norm.bias", e) : null;
        bool tied = !file.Has("output.weight");
        var output = !tied ? Matrix("output.weight", e, v) : copies?.Interleave(tokenEmbedding, lookedUp: true) ?? tokenEmbedding;
        var outputBias = OptionalVector(file, "output.bias", v, c.Architecture == "phi2");
        // gpt2's learned positions: one row per position of the trained context.
        WeightMatrix? positions = c.LearnedPositions ? MatrixView(file, "position_embd.weight", e, c.TrainedContextLength) : null;
        var (ropeFactors, ropeLimit) = RopeFactors(file, c, contextLength);
        // A tensor loading did not read (an output bias, a norm of another architecture, experts a dense config does not
        // name) means the file computes something else: refuse it rather than give other logits than the model's.
        foreach (var t in gguf.Tensors)
            if (!file.Names.Contains(t.Name))
                throw new ModelFormatException($"{file.Path}: tensor '{PrintableText.Of(t.Name)}' is not part of a {c.Architecture} model as KvSharp runs it; " +
                    "ignoring it would compute other logits than the model's");
        return new ModelWeights(gguf, tokenEmbedding, layers, outputNorm, output, tied, ropeFactors)
        {
            RopePositionLimit = positions is { } table ? table.Rows : ropeLimit,
            OutputNormBias = outputNormBias,
            OutputBias = outputBias,
            PositionEmbedding = positions,
        };
    }

    /// <summary>
    /// A deepseek2 block: latent attention (<see cref="LatentAttentionWeights"/>), RMS norms, and a dense SwiGLU or the
    /// layer's experts. The per-head key and value expansions come from attn_kv_b (the older layout: each head's key
    /// rows, then its value rows, each a row of latent values; the key rows are transposed here) or from attn_k_b and
    /// attn_v_b (the newer one, already one matrix per head in the shape the forward pass multiplies by).
    /// </summary>
    private static LayerWeights LatentLayer(Reads file, ModelConfig c, LatentAttentionShape mla, string p, Func<WeightMatrix, WeightMatrix> interleave,
        MixtureOfExperts? experts)
    {
        int e = c.EmbeddingDim, heads = c.HeadCount, r = mla.KvRank, nope = mla.NopeDim, vd = mla.ValueDim, qd = heads * mla.QueryHeadDim;
        WeightMatrix Matrix(string name, int cols, int rows) => interleave(MatrixView(file, name, cols, rows));
        bool lowRankQuery = mla.QueryRank > 0;
        var kvDown = Matrix(p + "attn_kv_a_mqa.weight", e, r + mla.RopeDim);
        var latent = new LatentAttentionWeights(mla, heads)
        {
            QueryDown = lowRankQuery ? Matrix(p + "attn_q_a.weight", e, mla.QueryRank) : default,
            QueryDownNorm = lowRankQuery ? Vector(file, p + "attn_q_a_norm.weight", mla.QueryRank) : null,
            KvDown = kvDown,
            KvNorm = Vector(file, p + "attn_kv_a_norm.weight", r),
        };
        Span<float> keyAbsorb = latent.KeyAbsorbValues, valueUp = latent.ValueUpValues;
        if (file.Has(p + "attn_kv_b.weight"))
        {
            var kvb = MatrixView(file, p + "attn_kv_b.weight", r, heads * (nope + vd));
            var row = new float[r];
            for (int h = 0; h < heads; h++)
            {
                int first = h * (nope + vd);
                for (int j = 0; j < nope; j++)
                {
                    Dequantize.Row(kvb.Type, kvb.Row(first + j), row);
                    for (int x = 0; x < r; x++) keyAbsorb[(h * r + x) * nope + j] = row[x];
                }
                for (int j = 0; j < vd; j++) Dequantize.Row(kvb.Type, kvb.Row(first + nope + j), valueUp.Slice((h * vd + j) * r, r));
            }
        }
        else
        {
            if (!file.Has(p + "attn_k_b.weight"))
                throw new ModelFormatException($"{file.Path}: tensor '{p}attn_kv_b.weight' is missing (and no split '{p}attn_k_b.weight' and '{p}attn_v_b.weight' hold it)");
            DequantizeAll(ExpertViews(file, p + "attn_k_b.weight", nope, r, heads), keyAbsorb);
            DequantizeAll(ExpertViews(file, p + "attn_v_b.weight", r, vd, heads), valueUp);
        }
        if (NonFinite.Any(keyAbsorb) || NonFinite.Any(valueUp))
            throw new ModelFormatException($"{file.Path}: the key or value expansion of '{p}' contains a non-finite value");

        int f = c.FeedForwardDim;
        return new LayerWeights
        {
            AttentionNorm = Vector(file, p + "attn_norm.weight", e),
            Query = lowRankQuery ? Matrix(p + "attn_q_b.weight", mla.QueryRank, qd) : Matrix(p + "attn_q.weight", e, qd),
            Key = kvDown,
            Value = default,
            AttentionOutput = Matrix(p + "attn_output.weight", heads * vd, e),
            Latent = latent,
            FeedForwardNorm = Vector(file, p + "ffn_norm.weight", e),
            Gate = experts == null ? Matrix(p + "ffn_gate.weight", e, f) : default,
            Up = experts == null ? Matrix(p + "ffn_up.weight", e, f) : default,
            Down = experts == null ? Matrix(p + "ffn_down.weight", f, e) : default,
            Experts = experts,
        };
    }

    private static void DequantizeAll(WeightMatrix[] matrices, Span<float> to)
    {
        int at = 0;
        foreach (var m in matrices)
            for (int row = 0; row < m.Rows; row++, at += m.Cols) Dequantize.Row(m.Type, m.Row(row), to.Slice(at, m.Cols));
    }

    /// <summary>
    /// The file, and the names of the tensors loading has read from it: every tensor the forward pass uses is read
    /// through <see cref="Tensor"/>, so what is left unread is what the model as KvSharp runs it would ignore.
    /// </summary>
    private sealed class Reads(GgufFile file)
    {
        public GgufFile File { get; } = file;
        public HashSet<string> Names { get; } = [];
        public string Path => File.Path;
        public bool Has(string name) => File.HasTensor(name);
    }

    private static GgufTensorInfo Tensor(Reads file, string name)
    {
        var t = file.File.FindTensor(name) ?? throw new ModelFormatException($"{file.Path}: tensor '{name}' is missing");
        file.Names.Add(name);
        if (!GgmlTypes.IsSupportedWeight(t.Type))
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has type {t.Type}, which KvSharp cannot compute with " +
                "(supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, Q4_1, IQ4_NL, IQ4_XS, MXFP4)");
        return t;
    }

    /// <summary>A 1-D tensor of <paramref name="cols"/> elements (or [cols, 1]) as a one-row matrix, as ggml multiplies it.</summary>
    private static WeightMatrix RowVector(Reads file, string name, int cols)
    {
        var t = Tensor(file, name);
        if (t.Dimensions[0] != cols || t.ElementCount != cols)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{cols}] from the metadata");
        return new WeightMatrix(t.Type, 1, cols, file.File.GetTensorPointer(t));
    }

    /// <summary>A matrix with GGUF shape [cols, rows] (ne0 = the input dimension, contiguous).</summary>
    private static WeightMatrix MatrixView(Reads file, string name, int cols, int rows)
    {
        var t = Tensor(file, name);
        if (t.Dimensions.Length != 2 || t.Dimensions[0] != cols || t.Dimensions[1] != rows)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{cols}, {rows}] from the metadata");
        return new WeightMatrix(t.Type, rows, cols, file.File.GetTensorPointer(t));
    }

    /// <summary>
    /// A fused matrix with GGUF shape [cols, sum of parts] as one view per part, each <paramref name="parts"/>[i] rows long,
    /// in order (rows are whole blocks, so a part starts at a row boundary of the file's bytes).
    /// </summary>
    private static WeightMatrix[] SplitRows(Reads file, string name, int cols, params int[] parts)
    {
        var whole = MatrixView(file, name, cols, parts.Sum());
        return Consecutive(whole.Type, cols, whole.Data, parts);
    }

    /// <summary>
    /// The experts of a 3-D tensor with GGUF shape [cols, rows, experts]: one [cols, rows] matrix view per expert, one
    /// after another in the file.
    /// </summary>
    private static WeightMatrix[] ExpertViews(Reads file, string name, int cols, int rows, int experts)
    {
        var t = Tensor(file, name);
        if (t.Dimensions.Length != 3 || t.Dimensions[0] != cols || t.Dimensions[1] != rows || t.Dimensions[2] != experts)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{cols}, {rows}, {experts}] from the metadata");
        return Consecutive(t.Type, cols, file.File.GetTensorPointer(t), Enumerable.Repeat(rows, experts).ToArray());
    }

    /// <summary>Matrices of <paramref name="rows"/>[i] rows of <paramref name="cols"/> each, one after another from <paramref name="data"/>.</summary>
    private static WeightMatrix[] Consecutive(GgmlType type, int cols, byte* data, int[] rows)
    {
        var views = new WeightMatrix[rows.Length];
        long offset = 0, rowBytes = GgmlTypes.RowBytes(type, cols);
        for (int i = 0; i < rows.Length; i++)
        {
            views[i] = new WeightMatrix(type, rows[i], cols, data + offset);
            offset += rows[i] * rowBytes;
        }
        return views;
    }

    /// <summary>
    /// The per-frequency rope divisors: rope_freqs (llama3); for a LongRoPE model the short table when sessions stay
    /// within the original context (then positions are held to it: the limit), the long table when they may go past
    /// it, chosen as llama.cpp chooses from its context size.
    /// </summary>
    private static (float[]? Factors, int? Limit) RopeFactors(Reads file, ModelConfig c, int? contextLength)
    {
        int pairs = c.RopeDimensions / 2;
        if (!c.LongRope) return (OptionalVector(file, "rope_freqs.weight", pairs, required: false), null);
        if (!file.Has("rope_factors_short.weight") || !file.Has("rope_factors_long.weight"))
            throw new ModelFormatException($"{file.Path}: rope scaling is longrope but 'rope_factors_short.weight' or 'rope_factors_long.weight' is missing");
        int original = c.RopeOriginalContextLength ?? c.TrainedContextLength;
        float[] shortFactors = Vector(file, "rope_factors_short.weight", pairs), longFactors = Vector(file, "rope_factors_long.weight", pairs);
        return (contextLength ?? c.TrainedContextLength) > original ? (longFactors, null) : (shortFactors, original);
    }

    private static float[] Vector(Reads file, string name, int length)
    {
        var t = Tensor(file, name);
        if (t.ElementCount != length || t.Dimensions.Length != 1)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{length}] from the metadata");
        var values = new float[length];
        Dequantize.Row(t.Type, file.File.GetTensorBytes(t), values);
        foreach (float x in values)
            if (!float.IsFinite(x)) throw new ModelFormatException($"{file.Path}: tensor '{name}' contains a non-finite value {x}");
        return values;
    }

    /// <summary>A 2-D tensor of GGUF shape [length, rows] as its rows (per-expert biases), each checked finite.</summary>
    private static float[][] VectorRows(Reads file, string name, int length, int rows)
    {
        var t = Tensor(file, name);
        if (t.Dimensions.Length != 2 || t.Dimensions[0] != length || t.Dimensions[1] != rows)
            throw new ModelFormatException($"{file.Path}: tensor '{name}' has shape {t.ShapeText}, expected [{length}, {rows}] from the metadata");
        var bytes = file.File.GetTensorBytes(t);
        int rowBytes = (int)GgmlTypes.RowBytes(t.Type, length);
        var values = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            values[r] = new float[length];
            Dequantize.Row(t.Type, bytes.Slice(r * rowBytes, rowBytes), values[r]);
            if (NonFinite.Any(values[r])) throw new ModelFormatException($"{file.Path}: tensor '{name}' contains a non-finite value (row {r})");
        }
        return values;
    }

    private static float[]? OptionalVector(Reads file, string name, int length, bool required)
    {
        if (file.Has(name)) return Vector(file, name, length);
        if (required) throw new ModelFormatException($"{file.Path}: tensor '{name}' is missing");
        return null;
    }
}
