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

    private static (ModelConfig, ModelWeights) Parse(MappedFile file)
    {
        Span<int> h = stackalloc int[7];
        for (int i = 0; i < 7; i++) h[i] = BinaryPrimitives.ReadInt32LittleEndian(file.Head[(i * 4)..]);
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabField = h[5], seqLen = h[6];
        bool shared = vocabField > 0;
        int vocab = Math.Abs(vocabField);
        string p = file.Path;
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab == 0 || seqLen <= 0)
            throw new ModelFormatException($"{p}: llama2.c header has a non-positive field (dim {dim}, hidden_dim {hidden}, n_layers {layers}, n_heads {heads}, n_kv_heads {kvHeads}, vocab_size {vocabField}, seq_len {seqLen})");
        if (dim % heads != 0)
            throw new ModelFormatException($"{p}: llama2.c header: dim {dim} is not a multiple of n_heads {heads}");
        int headDim = dim / heads;
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

        long kvDim = (long)kvHeads * headDim;
        long floats = (long)vocab * dim + layers * (2L * dim + (long)dim * dim * 2 + 2 * dim * kvDim + 3L * dim * hidden)
            + dim + (long)seqLen * headDim + (shared ? 0 : (long)vocab * dim);
        long expected = HeaderBytes + floats * 4;
        if (file.Length != expected)
            throw new ModelFormatException($"{p}: llama2.c checkpoint is {file.Length} bytes but its header (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}, kv heads {kvHeads}, vocab {vocabField}, seq_len {seqLen}) implies {expected}" +
                (file.Length < expected ? " (truncated?)" : ""));

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
