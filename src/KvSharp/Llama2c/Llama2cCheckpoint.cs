using System.Buffers.Binary;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Llama2c;

/// <summary>
/// A llama2.c legacy checkpoint: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size — negative
/// when the classifier is a separate matrix — and seq_len), then float32 weights in run.c's order. The weights are
/// used in place from the mapped file.
/// </summary>
public static unsafe class Llama2cCheckpoint
{
    private const int HeaderBytes = 7 * sizeof(int);

    public static (ModelConfig Config, ModelWeights Weights) Load(string path)
    {
        var file = new MappedFile(path, HeaderBytes, "llama2.c checkpoint");
        try
        {
            return Parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The hyperparameters of a checkpoint, checked against the file's length, without touching the weights
    /// (what `kvsharp inspect` needs).
    /// </summary>
    public static ModelConfig ReadConfig(string path)
    {
        using var file = new MappedFile(path, HeaderBytes, "llama2.c checkpoint");
        return ReadHeader(file).Config;
    }

    private sealed record Header(ModelConfig Config, bool SharedClassifier);

    /// <summary>
    /// Reads and checks the seven header fields. A file that is not a checkpoint at all (a text file, or a GGUF
    /// with a damaged magic, both tried here because they lack the GGUF magic) has fields that are implausible on
    /// their own; a real checkpoint that was cut short has a sane header whose sizes exceed the file.
    /// </summary>
    private static Header ReadHeader(MappedFile file)
    {
        Span<int> h = stackalloc int[7];
        for (int i = 0; i < 7; i++) h[i] = BinaryPrimitives.ReadInt32LittleEndian(file.Head[(i * 4)..]);
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabField = h[5], seqLen = h[6];
        string p = file.Path;
        string fields = $"dim {dim}, hidden_dim {hidden}, n_layers {layers}, n_heads {heads}, n_kv_heads {kvHeads}, vocab_size {vocabField}, seq_len {seqLen}";
        string? implausible =
            dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || seqLen <= 0 ? "a size field is not positive"
            : vocabField is 0 or int.MinValue ? $"vocab_size {vocabField} is out of range"
            : dim % heads != 0 ? $"dim {dim} is not a multiple of n_heads {heads}"
            : kvHeads > heads || heads % kvHeads != 0 ? $"n_heads {heads} is not a multiple of n_kv_heads {kvHeads}"
            : null;
        bool shared = vocabField > 0;
        int vocab = implausible == null ? Math.Abs(vocabField) : 0;
        int headDim = implausible == null ? dim / heads : 0;
        long? expected = implausible == null ? ExpectedLength(dim, hidden, layers, kvHeads * (long)headDim, vocab, seqLen, headDim, shared) : null;
        if (implausible == null && expected == null) implausible = "the sizes it implies overflow 64 bits";
        if (implausible == null && expected > file.Length && file.Length < expected / 1024)
            implausible = $"it implies {expected} bytes, over 1024 times the file's {file.Length}";
        if (implausible != null)
        {
            string notGguf = file.Head.StartsWith("GGUF"u8) ? "" : "neither a GGUF file (it does not start with \"GGUF\") nor ";
            throw new ModelFormatException($"{p}: {notGguf}a plausible llama2.c checkpoint: {implausible} (header: {fields})");
        }
        if (file.Length != expected)
            throw new ModelFormatException($"{p}: llama2.c checkpoint is {file.Length} bytes but its header ({fields}) implies {expected}" +
                (file.Length < expected ? " (truncated?)" : ""));

        var config = new ModelConfig
        {
            Architecture = "llama",
            Name = System.IO.Path.GetFileNameWithoutExtension(p),
            EmbeddingDim = dim,
            LayerCount = layers,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            FeedForwardDim = hidden,
            VocabSize = vocab,
            TrainedContextLength = seqLen,
            RmsNormEps = 1e-5f,
            RopeTheta = 10000f,
            RopeStyle = RopeStyle.Normal,
            RopeDimensions = headDim,
        };
        config.Validate(p);
        return new Header(config, shared);
    }

    /// <summary>Header plus float32 weights in run.c's order; null when the sizes overflow (no real file is that big).</summary>
    private static long? ExpectedLength(long dim, long hidden, long layers, long kvDim, long vocab, long seqLen, long headDim, bool shared)
    {
        try
        {
            checked
            {
                long perLayer = 2 * dim + dim * dim * 2 + 2 * dim * kvDim + 3 * dim * hidden;
                long floats = vocab * dim + layers * perLayer + dim + seqLen * headDim + (shared ? 0 : vocab * dim);
                return HeaderBytes + floats * 4;
            }
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    private static (ModelConfig, ModelWeights) Parse(MappedFile file)
    {
        var (config, shared) = ReadHeader(file);
        int dim = config.EmbeddingDim, hidden = config.FeedForwardDim, layers = config.LayerCount, vocab = config.VocabSize;
        int headDim = config.HeadDim, seqLen = config.TrainedContextLength;
        long kvDim = config.KvDim;

        byte* cursor = file.Pointer + HeaderBytes;
        byte* Take(long count)
        {
            byte* at = cursor;
            cursor += count * 4;
            return at;
        }
        // run.c stores each weight kind for all layers together: [layers][...]. Record where each kind starts.
        byte* embedding = Take((long)vocab * dim);
        byte* rmsAtt = Take((long)layers * dim);
        byte* wq = Take((long)layers * dim * dim);
        byte* wk = Take(layers * dim * kvDim);
        byte* wv = Take(layers * dim * kvDim);
        byte* wo = Take((long)layers * dim * dim);
        byte* rmsFfn = Take((long)layers * dim);
        byte* w1 = Take((long)layers * dim * hidden);
        byte* w2 = Take((long)layers * hidden * dim);
        byte* w3 = Take((long)layers * dim * hidden);
        byte* rmsFinal = Take(dim);
        Take((long)seqLen * headDim); // freq_cis_real and freq_cis_imag: RoPE tables we compute instead
        byte* classifier = shared ? embedding : cursor;

        static float[] Floats(byte* at, long offset, int count) => new ReadOnlySpan<float>((float*)at + offset, count).ToArray();
        // Matmul weights get interleaved copies (see InterleavedCopies); the embedding is looked up row by row.
        using var copies = new InterleavedCopies((at, bytes) => file.AdviseNotNeeded((byte*)at, bytes));
        WeightMatrix At(byte* kind, int layer, int rows, int cols) =>
            copies.Interleave(new(GgmlType.F32, rows, cols, kind + (long)layer * rows * cols * 4));

        var layerWeights = new LayerWeights[layers];
        for (int l = 0; l < layers; l++)
        {
            layerWeights[l] = new LayerWeights
            {
                AttentionNorm = Floats(rmsAtt, (long)l * dim, dim),
                Query = At(wq, l, dim, dim),
                Key = At(wk, l, (int)kvDim, dim),
                Value = At(wv, l, (int)kvDim, dim),
                AttentionOutput = At(wo, l, dim, dim),
                FeedForwardNorm = Floats(rmsFfn, (long)l * dim, dim),
                Gate = At(w1, l, hidden, dim),
                Down = At(w2, l, dim, hidden),
                Up = At(w3, l, hidden, dim),
            };
        }
        var embeddingMatrix = new WeightMatrix(GgmlType.F32, vocab, dim, embedding);
        var output = copies.Interleave(shared ? embeddingMatrix : new WeightMatrix(GgmlType.F32, vocab, dim, classifier), lookedUp: shared);
        var weights = new ModelWeights(file, embeddingMatrix, layerWeights, Floats(rmsFinal, 0, dim), output, shared, null);
        copies.Keep();
        return (config, weights);
    }
}
