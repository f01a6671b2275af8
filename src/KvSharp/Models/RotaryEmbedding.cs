using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Models;

/// <summary>
/// Rotary position embedding. The angles are computed as ggml does (theta = pos, multiplied by
/// base^(-2/n_dims) once per pair in float, divided by the optional per-frequency factors, then interpolated by the
/// linear or YaRN scaling), so positions rotate to the same float values llama.cpp uses. <see cref="Angles"/> are
/// pure rotations; <see cref="Magnitude"/> is what the forward pass multiplies them by (ggml's mscale), kept apart so
/// that a cache can undo and redo a rotation (KIVI keys) without touching the magnitude the key already carries.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly int _dims;
    private readonly float _thetaScale;
    private readonly float _frequencyScale;
    private readonly float[]? _factors;
    private readonly RopeStyle _style;
    /// <summary>YaRN: per pair, the share of its angle that stays the trained (extrapolated) one; null without YaRN.</summary>
    private readonly float[]? _extrapolationMix;

    public RotaryEmbedding(ModelConfig config, float[]? frequencyFactors)
    {
        _dims = config.RopeDimensions;
        _thetaScale = MathF.Pow(config.RopeTheta, -2f / _dims);
        _frequencyScale = config.RopeFrequencyScale;
        _factors = frequencyFactors;
        _style = config.RopeStyle;
        _extrapolationMix = config.Yarn?.ExtrapolationMix(_dims, config.RopeTheta);
        Magnitude = config.RopeAttentionFactor * (config.Yarn?.Magnitude(_frequencyScale) ?? 1f);
    }

    /// <summary>
    /// What every cos and sin is multiplied by where queries and keys are rotated: the file's attention factor times
    /// YaRN's 1 + 0.1 ln(factor), in float as ggml computes its mscale. 1 for most models.
    /// </summary>
    public float Magnitude { get; }

    /// <summary>Rotated dimensions (cos and sin each hold Dims/2 values per position).</summary>
    public int Dims => _dims;

    /// <summary>Fills cos/sin (Dims/2 each) for one position.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        float theta = position;
        for (int i = 0; i < _dims / 2; i++)
        {
            float angle = Angle(theta, i);
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
            theta *= _thetaScale;
        }
    }

    /// <summary>
    /// Pair i's angle at theta = position x thetaScale^i (the recurrence's float value), as ggml's rope_yarn computes it:
    /// the trained angle divided by the pair's factor, interpolated by the frequency scale, and under YaRN mixed back
    /// towards the trained angle by the pair's place on the ramp.
    /// </summary>
    private float Angle(float theta, int i)
    {
        float extrapolated = theta / (_factors?[i] ?? 1f);
        float interpolated = _frequencyScale * extrapolated;
        if (_extrapolationMix is not { } mix) return interpolated;
        return interpolated * (1 - mix[i]) + extrapolated * mix[i];
    }

    /// <summary>Rotates every head (consecutive rows of headDim) of one token in place.</summary>
    /// <remarks>
    /// Eight elements at a time where the CPU has AVX2: each output is still one rounded product minus (or plus) another,
    /// never fused, so the vectors give the scalar loop's bits. For interleaved pairs a lane holds x0 or x1 of its
    /// pair, the swapped vector the other, and sin carries the sign: x0·cos + x1·(-sin) is x0·cos - x1·sin exactly, and
    /// x1·cos + x0·sin the same sum as x0·sin + x1·cos.
    /// </remarks>
    public void Apply(Span<float> heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = _dims / 2;
        cos = cos[..half];
        sin = sin[..half];
        for (int h = 0; h < heads.Length / headDim; h++)
        {
            var x = heads.Slice(h * headDim, _dims);
            if (_style == RopeStyle.Normal) RotatePairs(x, cos, sin);
            else RotateHalves(x, cos, sin);
        }
    }

    /// <summary>Pairs (x[2i], x[2i + 1]), as llama's rope.</summary>
    private static void RotatePairs(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int i = 0;
        if (Avx2.IsSupported)
        {
            var spread = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
            var signs = Vector256.Create(-1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f);
            ref float p = ref MemoryMarshal.GetReference(x);
            for (; i + 4 <= cos.Length; i += 4)
            {
                var v = Vector256.LoadUnsafe(ref p, (nuint)(2 * i));
                var c = Avx2.PermuteVar8x32(Vector128.LoadUnsafe(in cos[i]).ToVector256Unsafe(), spread);
                var s = Avx2.PermuteVar8x32(Vector128.LoadUnsafe(in sin[i]).ToVector256Unsafe(), spread) * signs;
                (v * c + Avx.Permute(v, 0b10_11_00_01) * s).StoreUnsafe(ref p, (nuint)(2 * i));
            }
        }
        for (; i < cos.Length; i++)
        {
            float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * cos[i] - x1 * sin[i];
            x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
        }
    }

    /// <summary>Pairs (x[i], x[i + Dims/2]), as NeoX-style rope (qwen2 and others).</summary>
    private static void RotateHalves(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float p = ref MemoryMarshal.GetReference(x);
            for (; i + 8 <= half; i += 8)
            {
                var x0 = Vector256.LoadUnsafe(ref p, (nuint)i);
                var x1 = Vector256.LoadUnsafe(ref p, (nuint)(i + half));
                var c = Vector256.LoadUnsafe(in cos[i]);
                var s = Vector256.LoadUnsafe(in sin[i]);
                (x0 * c - x1 * s).StoreUnsafe(ref p, (nuint)i);
                (x0 * s + x1 * c).StoreUnsafe(ref p, (nuint)(i + half));
            }
        }
        for (; i < half; i++)
        {
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * cos[i] - x1 * sin[i];
            x[i + half] = x0 * sin[i] + x1 * cos[i];
        }
    }

    /// <summary>
    /// The rotation that carries a key rotated at <paramref name="fromPosition"/> to <paramref name="toPosition"/> (a
    /// context shift moves cached keys without recomputing them): per pair, cos and sin (Dims/2 each) of
    /// angle(to) - angle(from), where each angle is the float <see cref="Angles"/> rotates by at that position and
    /// the difference and its cos/sin are taken in double. So a key re-rotated from p to q is the key rotated at q, to
    /// within rounding, at any position. (llama.cpp rotates by the angle of q - p instead, which drifts from
    /// angle(q) - angle(p) by the rounding of the float recurrence, more so far into the context.)
    /// </summary>
    public void RerotationAngles(int fromPosition, int toPosition, Span<double> cos, Span<double> sin)
    {
        int half = _dims / 2;
        if (cos.Length < half || sin.Length < half)
            throw new ArgumentException($"re-rotation needs {half} cos and sin values (Dims / 2), got {cos.Length} and {sin.Length}");
        float from = fromPosition, to = toPosition;
        for (int i = 0; i < half; i++)
        {
            double delta = (double)Angle(to, i) - Angle(from, i);
            cos[i] = Math.Cos(delta);
            sin[i] = Math.Sin(delta);
            from *= _thetaScale;
            to *= _thetaScale;
        }
    }

    /// <summary>
    /// Rotates every head (consecutive rows of <paramref name="headDim"/>) of already rotated keys by
    /// <see cref="RerotationAngles"/>, in double with one rounding per element; the same pairs as <see cref="Apply"/>
    /// (neighbours, or halves for NeoX), and dimensions past <see cref="Dims"/> are left as they are.
    /// </summary>
    public void Rerotate(Span<float> heads, int headDim, ReadOnlySpan<double> cos, ReadOnlySpan<double> sin)
    {
        int half = _dims / 2;
        if (headDim < _dims || heads.Length % headDim != 0)
            throw new ArgumentException($"{heads.Length} floats are not whole heads of {headDim} (at least the {_dims} rotated dimensions)", nameof(heads));
        if (cos.Length < half || sin.Length < half)
            throw new ArgumentException($"re-rotation needs {half} cos and sin values (Dims / 2), got {cos.Length} and {sin.Length}");
        for (int h = 0; h < heads.Length / headDim; h++)
        {
            var x = heads.Slice(h * headDim, headDim);
            for (int i = 0; i < half; i++)
            {
                var (a, b) = _style == RopeStyle.Normal ? (2 * i, 2 * i + 1) : (i, i + half);
                double x0 = x[a], x1 = x[b];
                x[a] = (float)(x0 * cos[i] - x1 * sin[i]);
                x[b] = (float)(x0 * sin[i] + x1 * cos[i]);
            }
        }
    }

    /// <summary>Re-rotates keys rotated at <paramref name="fromPosition"/> to <paramref name="toPosition"/> (<see cref="RerotationAngles"/>).</summary>
    public void Rerotate(Span<float> heads, int headDim, int fromPosition, int toPosition)
    {
        int half = _dims / 2;
        Span<double> cos = half <= 256 ? stackalloc double[half] : new double[half];
        Span<double> sin = half <= 256 ? stackalloc double[half] : new double[half];
        RerotationAngles(fromPosition, toPosition, cos, sin);
        Rerotate(heads, headDim, cos, sin);
    }
}
