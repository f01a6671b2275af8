using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Synthetic;

/// <summary>
/// Writes random-weight llama GGUF files of a <see cref="SyntheticShape"/> in any supported weight type, so
/// benchmarks need no download and other engines (llama.cpp) can run the very same file.
/// </summary>
/// <remarks>
/// Initialisation follows shared/fixtures (so activations stay O(1) and attention is not uniform): every matrix
/// N(0, (g/√fan_in)²) with g = 1.2 for attn_q/attn_k and 1 otherwise; token_embd N(0, (2/√E)²); output.weight
/// N(0, (1.5/√E)²); norm weights 1 + N(0, 0.05²), kept F32. Each row has its own seeded generator, so rows are
/// generated and quantized in parallel and the file is byte-deterministic for a (shape, type, context, seed).
/// All matrices get the requested type, like llama-quantize --pure, except where a matrix's row length is not a
/// multiple of the type's block: then llama.cpp's fallback is used (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0,
/// Q2_K/Q3_K/IQ4_XS→IQ4_NL, then F16).
/// </remarks>
public static class SyntheticModelBuilder
{
    public const ulong DefaultSeed = 1234;
    /// <summary>Bumped whenever the bytes written for the same arguments change, so stale cached files are not reused.</summary>
    public const int FormatVersion = 1;

    public static readonly GgmlType[] SupportedTypes =
        [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q5_1,
         GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
         GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.Q4_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.MXFP4];

    /// <summary>Parses a weight type name such as "q8_0", "Q4_K", "f32" (case-insensitive).</summary>
    public static GgmlType ParseType(string name)
    {
        foreach (var t in SupportedTypes)
            if (string.Equals(t.ToString(), name, StringComparison.OrdinalIgnoreCase)) return t;
        throw new ArgumentException(
            $"unknown weight type '{name}' (supported: {string.Join(", ", SupportedTypes.Select(t => t.ToString().ToLowerInvariant()))})");
    }

    /// <summary>The type a matrix with rows of <paramref name="cols"/> elements actually gets (llama.cpp's fallbacks).</summary>
    public static GgmlType TensorType(GgmlType requested, int cols)
    {
        var t = requested;
        if (cols % GgmlTypes.BlockSize(t) != 0)
            t = t switch
            {
                GgmlType.Q4_K => GgmlType.Q5_0, GgmlType.Q5_K => GgmlType.Q5_1, GgmlType.Q6_K => GgmlType.Q8_0,
                GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.IQ4_XS => GgmlType.IQ4_NL,
                _ => t,
            };
        if (cols % GgmlTypes.BlockSize(t) != 0) t = GgmlType.F16;
        return t;
    }

    /// <summary>general.file_type as llama.cpp numbers it (LLAMA_FTYPE_*), for tools that display it.</summary>
    private static uint FileType(GgmlType t) => t switch
    {
        GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q4_0 => 2, GgmlType.Q8_0 => 7, GgmlType.Q5_0 => 8,
        GgmlType.Q5_1 => 9, GgmlType.Q4_K => 14, GgmlType.Q5_K => 16, GgmlType.Q6_K => 18, GgmlType.BF16 => 32,
        GgmlType.Q2_K => 10, GgmlType.Q3_K => 11, // LLAMA_FTYPE_MOSTLY_Q2_K, _Q3_K_S (the pure Q3_K mix)
        GgmlType.Q4_1 => 3, GgmlType.IQ4_NL => 25, GgmlType.IQ4_XS => 30, GgmlType.MXFP4 => 38, // LLAMA_FTYPE_MOSTLY_MXFP4_MOE
        _ => 0,
    };

    /// <summary>
    /// The file name a synthetic model is cached under: with a copied vocabulary, its identity too (the built-in
    /// synthetic vocabulary keeps the names files were cached under before vocabularies could be copied).
    /// </summary>
    public static string FileName(SyntheticShape shape, GgmlType type, int contextLength, ulong seed, GgufVocabulary? vocabulary = null) =>
        $"{shape.Name}-{type.ToString().ToLowerInvariant()}-ctx{contextLength}-seed{seed}" +
        (vocabulary != null ? $"-vocab-{vocabulary.Identity}" : "") + $"-v{FormatVersion}.gguf";

    /// <summary>$KVSHARP_CACHE_DIR, else $XDG_CACHE_HOME/kvsharp/synthetic, else ~/.cache/kvsharp/synthetic.</summary>
    public static string DefaultCacheDirectory()
    {
        string? explicitDir = Environment.GetEnvironmentVariable("KVSHARP_CACHE_DIR");
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "kvsharp", "synthetic");
    }

    /// <summary>
    /// The path of the cached synthetic model, writing it first if it is not there yet (to a temporary name, then
    /// renamed, so an interrupted write never leaves a truncated file under the final name).
    /// </summary>
    public static string GetOrCreate(SyntheticShape shape, GgmlType type, int? contextLength = null, ulong seed = DefaultSeed,
        string? cacheDirectory = null, Action<string>? progress = null, GgufVocabulary? vocabulary = null)
    {
        int ctx = contextLength ?? shape.ContextLength;
        string dir = cacheDirectory ?? DefaultCacheDirectory();
        string path = Path.Combine(dir, FileName(shape, type, ctx, seed, vocabulary));
        if (File.Exists(path)) return path;
        Directory.CreateDirectory(dir);
        Write(shape, type, path, ctx, seed, progress, vocabulary);
        return path;
    }

    /// <summary>Writes the model to <paramref name="path"/> (via a temporary file in the same folder, then renamed).</summary>
    public static void Write(SyntheticShape shape, GgmlType type, string path, int? contextLength = null, ulong seed = DefaultSeed,
        Action<string>? progress = null, GgufVocabulary? vocabulary = null)
    {
        var writer = CreateWriter(shape, type, contextLength, seed, withTensors: true, progress, vocabulary);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            writer.Write(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>
    /// The GGUF writer for a synthetic model: metadata and tokenizer, and with <paramref name="withTensors"/> every
    /// tensor (without, a metadata-only file whose config can be checked cheaply even for the big shapes). With a
    /// <paramref name="vocabulary"/> the tokenizer is that one and the vocabulary size (embedding and output rows) follows it.
    /// </summary>
    public static GgufWriter CreateWriter(SyntheticShape shape, GgmlType type, int? contextLength = null, ulong seed = DefaultSeed,
        bool withTensors = true, Action<string>? progress = null, GgufVocabulary? vocabulary = null)
    {
        if (vocabulary != null) shape = shape with { VocabSize = vocabulary.Size };
        if (!SupportedTypes.Contains(type))
            throw new ArgumentException($"weight type {type} is not supported for synthetic models");
        int ctx = contextLength ?? shape.ContextLength;
        if (ctx <= 0) throw new ArgumentOutOfRangeException(nameof(contextLength), ctx, "context length must be positive");
        if (shape.EmbeddingDim % shape.HeadCount != 0 || shape.HeadCount % shape.KvHeadCount != 0)
            throw new ArgumentException($"shape {shape.Name}: embedding {shape.EmbeddingDim}, heads {shape.HeadCount}, kv heads {shape.KvHeadCount} do not divide");

        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", $"kvsharp-synthetic-{shape.Name}-{type.ToString().ToLowerInvariant()}");
        w.Add("general.file_type", FileType(type));
        w.Add("general.description", $"random weights (seed {seed}) of the {shape.Description}, written by KvSharp's synthetic model builder v{FormatVersion}" +
            (vocabulary != null ? $"; vocabulary and chat template of {Path.GetFileName(vocabulary.Path)}" : ""));
        w.Add("llama.context_length", (uint)ctx);
        w.Add("llama.embedding_length", (uint)shape.EmbeddingDim);
        w.Add("llama.block_count", (uint)shape.LayerCount);
        w.Add("llama.feed_forward_length", (uint)shape.FeedForwardDim);
        w.Add("llama.attention.head_count", (uint)shape.HeadCount);
        w.Add("llama.attention.head_count_kv", (uint)shape.KvHeadCount);
        w.Add("llama.attention.layer_norm_rms_epsilon", shape.RmsNormEps);
        w.Add("llama.rope.freq_base", shape.RopeTheta);
        w.Add("llama.rope.dimension_count", (uint)shape.HeadDim);
        w.Add("llama.vocab_size", (uint)shape.VocabSize);
        if (vocabulary != null)
        {
            foreach (var (key, value) in vocabulary.Keys) w.Add(key, value);
        }
        else AddSyntheticTokenizer(w, shape.VocabSize);
        if (!withTensors) return w;

        int e = shape.EmbeddingDim, q = shape.HeadCount * shape.HeadDim, kv = shape.KvHeadCount * shape.HeadDim, f = shape.FeedForwardDim;
        float Std(int fanIn, float gain = 1f) => gain / MathF.Sqrt(fanIn);

        progress?.Invoke("token_embd.weight");
        AddMatrix(w, "token_embd.weight", e, shape.VocabSize, 2f / MathF.Sqrt(e), type, seed);
        for (int i = 0; i < shape.LayerCount; i++)
        {
            progress?.Invoke($"layer {i + 1}/{shape.LayerCount}");
            string p = $"blk.{i}.";
            AddNorm(w, p + "attn_norm.weight", e, seed);
            AddMatrix(w, p + "attn_q.weight", e, q, Std(e, 1.2f), type, seed);
            AddMatrix(w, p + "attn_k.weight", e, kv, Std(e, 1.2f), type, seed);
            AddMatrix(w, p + "attn_v.weight", e, kv, Std(e), type, seed);
            AddMatrix(w, p + "attn_output.weight", q, e, Std(q), type, seed);
            AddNorm(w, p + "ffn_norm.weight", e, seed);
            AddMatrix(w, p + "ffn_gate.weight", e, f, Std(e), type, seed);
            AddMatrix(w, p + "ffn_up.weight", e, f, Std(e), type, seed);
            AddMatrix(w, p + "ffn_down.weight", f, e, Std(f), type, seed);
        }
        AddNorm(w, "output_norm.weight", e, seed);
        if (!shape.TiedOutput)
        {
            progress?.Invoke("output.weight");
            AddMatrix(w, "output.weight", e, shape.VocabSize, 1.5f / MathF.Sqrt(e), type, seed);
        }
        return w;
    }

    private static void AddSyntheticTokenizer(GgufWriter w, int vocabSize)
    {
        var (tokens, scores, types) = SyntheticVocabulary.Create(vocabSize);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", GgufValue.Of(tokens));
        w.Add("tokenizer.ggml.scores", GgufValue.Of(scores));
        w.Add("tokenizer.ggml.token_type", GgufValue.Of(types));
        w.Add("tokenizer.ggml.unknown_token_id", (uint)SyntheticVocabulary.UnknownId);
        w.Add("tokenizer.ggml.bos_token_id", (uint)SyntheticVocabulary.BosId);
        w.Add("tokenizer.ggml.eos_token_id", (uint)SyntheticVocabulary.EosId);
        w.Add("tokenizer.ggml.add_bos_token", true);
        w.Add("tokenizer.ggml.add_eos_token", false);
    }

    private static void AddNorm(GgufWriter w, string name, int n, ulong seed)
    {
        var rng = SyntheticRandom.ForRow(seed, name, 0);
        var values = new float[n];
        for (int i = 0; i < n; i++) values[i] = 1f + 0.05f * rng.NextNormal();
        w.AddTensor(name, [n], values);
    }

    /// <summary>A [cols, rows] matrix (ne0 = cols, contiguous) of N(0, std²) values, generated and quantized row by row in parallel.</summary>
    private static void AddMatrix(GgufWriter w, string name, int cols, int rows, float std, GgmlType requested, ulong seed)
    {
        var type = TensorType(requested, cols);
        int rowBytes = checked((int)GgmlTypes.RowBytes(type, cols));
        var data = new byte[checked((long)rowBytes * rows)];
        const int RowsPerChunk = 64;
        int chunks = (rows + RowsPerChunk - 1) / RowsPerChunk;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
            () => new float[cols],
            (chunk, _, row) =>
            {
                int end = Math.Min(rows, (chunk + 1) * RowsPerChunk);
                for (int r = chunk * RowsPerChunk; r < end; r++)
                {
                    var rng = SyntheticRandom.ForRow(seed, name, r);
                    for (int c = 0; c < cols; c++) row[c] = std * rng.NextNormal();
                    Quantize.Row(type, row, data.AsSpan((int)((long)r * rowBytes), rowBytes));
                }
                return row;
            },
            _ => { });
        w.AddTensor(name, type, [cols, rows], data);
    }
}
