namespace KvSharp.Models;

/// <summary>
/// Rotary position embedding. The angles are computed as ggml does (theta = pos, multiplied by
/// base^(-2/n_dims) once per pair in float, divided by the optional per-frequency factors), so positions rotate
/// to the same float values llama.cpp uses.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly int _dims;
    private readonly float _thetaScale;
    private readonly float _frequencyScale;
    private readonly float[]? _factors;
    private readonly RopeStyle _style;

    public RotaryEmbedding(ModelConfig config, float[]? frequencyFactors)
    {
        _dims = config.RopeDimensions;
        _thetaScale = MathF.Pow(config.RopeTheta, -2f / _dims);
        _frequencyScale = config.RopeFrequencyScale;
        _factors = frequencyFactors;
        _style = config.RopeStyle;
    }

    /// <summary>Rotated dimensions (cos and sin each hold Dims/2 values per position).</summary>
    public int Dims => _dims;

    /// <summary>Fills cos/sin (Dims/2 each) for one position.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        float theta = position;
        for (int i = 0; i < _dims / 2; i++)
        {
            float ff = _factors?[i] ?? 1f;
            float angle = _frequencyScale * (theta / ff);
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
            theta *= _thetaScale;
        }
    }

    /// <summary>Rotates every head (consecutive rows of headDim) of one token in place.</summary>
    public void Apply(Span<float> heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = _dims / 2;
        for (int h = 0; h < heads.Length / headDim; h++)
        {
            var x = heads.Slice(h * headDim, headDim);
            if (_style == RopeStyle.Normal)
            {
                for (int i = 0; i < half; i++)
                {
                    float x0 = x[2 * i], x1 = x[2 * i + 1];
                    x[2 * i] = x0 * cos[i] - x1 * sin[i];
                    x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
                }
            }
            else
            {
                for (int i = 0; i < half; i++)
                {
                    float x0 = x[i], x1 = x[i + half];
                    x[i] = x0 * cos[i] - x1 * sin[i];
                    x[i + half] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}
