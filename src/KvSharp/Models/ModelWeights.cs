using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>The weights of one transformer block. Matrices point into the memory-mapped model file.</summary>
public sealed class LayerWeights
{
    public required float[] AttentionNorm { get; init; }
    public required WeightMatrix Query { get; init; }
    public required WeightMatrix Key { get; init; }
    public required WeightMatrix Value { get; init; }
    public required WeightMatrix AttentionOutput { get; init; }
    public float[]? QueryBias { get; init; }
    public float[]? KeyBias { get; init; }
    public float[]? ValueBias { get; init; }
    /// <summary>The attention output projection's bias (attn_output.bias, which some llama-family files carry); null for none.</summary>
    public float[]? OutputBias { get; init; }
    /// <summary>Per-head RMSNorm weights of the queries and keys (qwen3), HeadDim each; null where the model has none.</summary>
    public float[]? QueryNorm { get; init; }
    public float[]? KeyNorm { get; init; }
    public required float[] FeedForwardNorm { get; init; }
    /// <summary>RMSNorm weights of the attention and feed-forward outputs (Gemma 2/3); null where the model has none.</summary>
    public float[]? AttentionPostNorm { get; init; }
    public float[]? FeedForwardPostNorm { get; init; }
    public required WeightMatrix Gate { get; init; }
    public required WeightMatrix Up { get; init; }
    public required WeightMatrix Down { get; init; }
}

/// <summary>
/// All weights of a model. Matrices are views of the mapped file; Q8_0, Q4_0, K-quant and F32 matmul weights also have an
/// interleaved copy (<see cref="WeightMatrix.Interleaved"/>) in native memory. Norm vectors and biases are small and
/// kept as float arrays. Disposing frees the copies and releases the file mapping the matrices point into.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly IDisposable _owner;

    public WeightMatrix TokenEmbedding { get; }
    public IReadOnlyList<LayerWeights> Layers { get; }
    public float[] OutputNorm { get; }
    /// <summary>The classifier; the same matrix as <see cref="TokenEmbedding"/> when the model ties them.</summary>
    public WeightMatrix Output { get; }
    public bool TiedOutput { get; }
    /// <summary>Per-frequency divisors for rotary embedding (llama3-style scaling, the rope_freqs tensor); null if absent.</summary>
    public float[]? RopeFrequencyFactors { get; }
    /// <summary>
    /// Positions the rope factors are meant for: a LongRoPE model loaded with its short factors covers its original
    /// context only (load it with a longer <see cref="ModelLoadOptions.ContextLength"/> for the long ones); null: no limit.
    /// </summary>
    public int? RopePositionLimit { get; init; }

    public ModelWeights(IDisposable owner, WeightMatrix tokenEmbedding, IReadOnlyList<LayerWeights> layers, float[] outputNorm,
        WeightMatrix output, bool tiedOutput, float[]? ropeFrequencyFactors)
    {
        _owner = owner;
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        TiedOutput = tiedOutput;
        RopeFrequencyFactors = ropeFrequencyFactors;
    }

    /// <summary>Bytes of weight data one decode step reads (every matrix once), for bandwidth estimates.</summary>
    public long MatrixBytes
    {
        get
        {
            long total = TiedOutput ? 0 : (long)Output.RowBytes * Output.Rows;
            foreach (var m in LayerMatrices()) total += (long)m.RowBytes * m.Rows;
            return total + (long)TokenEmbedding.RowBytes * (TiedOutput ? TokenEmbedding.Rows : 0);
        }
    }

    public void Dispose()
    {
        // Interleaved copies are native memory the weights own (Dispose is idempotent, so a tied matrix is fine).
        Output.Interleaved?.Dispose();
        foreach (var m in LayerMatrices()) m.Interleaved?.Dispose();
        _owner.Dispose();
    }

    /// <summary>Every matrix a forward pass multiplies by: the seven of every layer, then the output (the tied embedding where it is tied).</summary>
    public IEnumerable<WeightMatrix> ProductMatrices() => LayerMatrices().Append(Output);

    /// <summary>The seven matrices of every layer.</summary>
    private IEnumerable<WeightMatrix> LayerMatrices() =>
        Layers.SelectMany(l => new[] { l.Query, l.Key, l.Value, l.AttentionOutput, l.Gate, l.Up, l.Down });
}
