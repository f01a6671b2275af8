namespace KvSharp.Models;

/// <summary>
/// YaRN rope scaling (Peng et al. 2023; GGUF <c>{arch}.rope.scaling.type = "yarn"</c>): a model stretched from
/// <see cref="OriginalContextLength"/> by the rope's scaling factor keeps its fast-turning pairs as they were trained
/// (extrapolated), interpolates its slow ones by the factor, and ramps between the two over the pairs that turn
/// between <see cref="BetaFast"/> and <see cref="BetaSlow"/> times over the original context. Every rotation's
/// magnitude grows by 1 + 0.1 ln(factor) (queries and keys both, so scores by its square), as ggml's rope does.
/// </summary>
/// <param name="ExtrapolationFactor">How much of the ramp applies (ggml's ext_factor; 1 for YaRN files).</param>
/// <param name="BetaFast">Pairs turning at least this many times over the original context are not interpolated.</param>
/// <param name="BetaSlow">Pairs turning at most this many times are fully interpolated.</param>
/// <param name="OriginalContextLength">The context the model was trained with before it was stretched.</param>
public sealed record YarnScaling(float ExtrapolationFactor, float BetaFast, float BetaSlow, int OriginalContextLength)
{
    /// <summary>
    /// The first and last pair of the ramp, as ggml_rope_yarn_corr_dims computes them (in float): the pair that turns
    /// beta times over the original context is dims x ln(original / (beta x 2 pi)) / (2 ln base).
    /// </summary>
    public (float Low, float High) CorrectionRange(int ropeDims, float ropeBase)
    {
        float Pair(float beta) => ropeDims * MathF.Log(OriginalContextLength / (beta * 2 * MathF.PI)) / (2 * MathF.Log(ropeBase));
        return (MathF.Max(0, MathF.Floor(Pair(BetaFast))), MathF.Min(ropeDims - 1, MathF.Ceiling(Pair(BetaSlow))));
    }

    /// <summary>
    /// Per pair, how much of its angle is the trained (extrapolated) one rather than the interpolated one: 1 below the
    /// ramp, 0 above it, linear between (ggml's rope_yarn_ramp times the extrapolation factor).
    /// </summary>
    public float[] ExtrapolationMix(int ropeDims, float ropeBase)
    {
        var (low, high) = CorrectionRange(ropeDims, ropeBase);
        var mix = new float[ropeDims / 2];
        for (int i = 0; i < mix.Length; i++)
        {
            float y = (i - low) / MathF.Max(0.001f, high - low);
            mix[i] = (1 - MathF.Min(1, MathF.Max(0, y))) * ExtrapolationFactor;
        }
        return mix;
    }

    /// <summary>The magnitude every rotation is multiplied by: 1 + 0.1 ln(1 / frequency scale) (ggml's mscale).</summary>
    public float Magnitude(float frequencyScale) => ExtrapolationFactor != 0 ? 1f + 0.1f * MathF.Log(1f / frequencyScale) : 1f;
}
