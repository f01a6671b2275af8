using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Reference;

/// <summary>A weight matrix as plain floats, row-major: <see cref="Rows"/> outputs of <see cref="Cols"/> inputs each.</summary>
internal sealed record FloatMatrix(int Rows, int Cols, float[] Values)
{
    public ReadOnlySpan<float> Row(int r) => Values.AsSpan(r * Cols, Cols);

    /// <summary>
    /// Every row of <paramref name="m"/> through <see cref="Dequantize.Row"/>, which reproduces ggml's block
    /// decoding exactly: the reference sees the same weights as the fast path, only as floats.
    /// </summary>
    public static FloatMatrix From(WeightMatrix m)
    {
        var values = new float[(long)m.Rows * m.Cols];
        for (int r = 0; r < m.Rows; r++) Dequantize.Row(m.Type, m.Row(r), values.AsSpan(r * m.Cols, m.Cols));
        return new FloatMatrix(m.Rows, m.Cols, values);
    }
}

/// <summary>One transformer block's weights as floats. Norm weights and biases are floats already (shared, not copied).</summary>
internal sealed record ReferenceLayer(
    float[]? AttentionNorm, float[]? AttentionNormBias, FloatMatrix Query, FloatMatrix Key, FloatMatrix Value, FloatMatrix AttentionOutput,
    float[]? QueryBias, float[]? KeyBias, float[]? ValueBias, float[]? OutputBias, float[]? QueryNorm, float[]? KeyNorm,
    float[]? AttentionPostNorm, float[]? FeedForwardNorm, float[]? FeedForwardNormBias, float[]? FeedForwardPostNorm,
    FloatMatrix? Gate, FloatMatrix? Up, FloatMatrix? Down, float[]? GateBias, float[]? UpBias, float[]? DownBias, ReferenceExperts? Experts,
    float[]? SinkLogits)
{
    public static ReferenceLayer From(LayerWeights w) => new(
        w.AttentionNorm, w.AttentionNormBias, FloatMatrix.From(w.Query), FloatMatrix.From(w.Key), FloatMatrix.From(w.Value), FloatMatrix.From(w.AttentionOutput),
        w.QueryBias, w.KeyBias, w.ValueBias, w.OutputBias, w.QueryNorm, w.KeyNorm,
        w.AttentionPostNorm, w.FeedForwardNorm, w.FeedForwardNormBias, w.FeedForwardPostNorm,
        w.Experts == null && w.IsGated ? FloatMatrix.From(w.Gate) : null, w.Experts == null ? FloatMatrix.From(w.Up) : null,
        w.Experts == null ? FloatMatrix.From(w.Down) : null, w.GateBias, w.UpBias, w.DownBias,
        w.Experts == null ? null : ReferenceExperts.From(w.Experts), w.SinkLogits);
}

/// <summary>A mixture of experts as floats: the router and each expert's gate, up and down.</summary>
internal sealed record ReferenceExperts(FloatMatrix Router, FloatMatrix[] Gate, FloatMatrix[] Up, FloatMatrix[] Down, FloatMatrix[]? Shared,
    float[]? RouterBias, ExpertBiases? Biases)
{
    public static ReferenceExperts From(MixtureOfExperts m) => new(FloatMatrix.From(m.Router),
        m.Gate.Select(FloatMatrix.From).ToArray(), m.Up.Select(FloatMatrix.From).ToArray(), m.Down.Select(FloatMatrix.From).ToArray(),
        m.Shared is { } s ? [FloatMatrix.From(s.Router), FloatMatrix.From(s.Gate), FloatMatrix.From(s.Up), FloatMatrix.From(s.Down)] : null,
        m.RouterBias, m.Biases);
}
