using KvSharp.Reference;
using KvSharp.Sampling;
using KvSharp.Tests.Models;

namespace KvSharp.Tests.Reference;

/// <summary>
/// How the tests use <see cref="ReferenceModel"/> as their oracle, and how close an engine that quantizes
/// activations as llama.cpp does (ours, and llama.cpp itself) can get to it.
///
/// Tolerances (max |Δ| over the logits compared / mean |Δ|), per weight type: the largest we measured, over our fast
/// path on a 150-token prompt and on 32 greedy steps (a step's mean is over one token's 512 logits, so it is noisier
/// than a prompt's) and over llama.cpp's 64-token dumps (F32 KV cache), then a margin of 1.5 to 3x:
/// - F32: 1e-4 / 1e-5 (measured 3.6e-5 / 5.3e-6). Both engines compute the same sums in float, in other orders (the
///   reference adds in double), and build RoPE angles with ggml's float recurrence where the reference takes
///   Math.Pow in double: at position 150 the float angle alone is off by ~1e-5 radians. The largest gaps are on
///   stories260K, whose logits are the largest.
/// - F16: 0.025 / 7e-3 (measured 0.013 / 3.4e-3); BF16: 0.15 / 0.04 (0.09 / 0.02). Both engines round each activation
///   to the weight's 16-bit type before the dot product (ggml's vec_dot_type); the reference does not.
/// - Q8_0, Q4_0, K-quants: 0.6 / 0.15 (measured 0.39 / 0.09). Both engines quantize activations to 8 bits (Q8_0 or
///   Q8_K) for the integer block dots; the reference multiplies the same dequantized weights by float activations,
///   so this is the price of activation quantization alone.
/// Argmax must agree wherever the reference's top-2 margin exceeds twice the max tolerance.
/// </summary>
internal static class ReferenceOracle
{
    /// <summary>
    /// F32 weights in a model whose feed-forward is GeGLU (gemma): ggml's GELU rounds its input to a half and looks the
    /// result up (<see cref="KvSharp.Tensors.Gelu"/>), so a gate value within a float ulp of a half's rounding boundary
    /// in one engine and across it in the other moves that output by a half's step (2^-11 relative). Measured: up to
    /// 1.6e-4 / 1.1e-5 against llama.cpp (gemma, 2 layers), 1.0e-3 / 7.5e-5 against the reference (gemma3, 6 layers).
    /// </summary>
    public const string GeluF32 = "F32+GELU";

    public static (float Max, float Mean) Tolerance(string weightType) => weightType switch
    {
        "F32" => (1e-4f, 1e-5f),
        GeluF32 => (2e-3f, 2e-4f),
        "F16" => (0.025f, 7e-3f),
        "BF16" => (0.15f, 0.04f),
        _ => (0.6f, 0.15f),
    };

    /// <summary>The reference's logits for each of <paramref name="tokens"/> in turn, [tokens x vocab], from an empty cache.</summary>
    public static float[] Logits(ReferenceModel reference, ReadOnlySpan<int> tokens)
    {
        reference.Reset();
        var all = new List<float>();
        foreach (int t in tokens) all.AddRange(reference.Forward(t));
        return all.ToArray();
    }

    /// <summary>
    /// Asserts <paramref name="actual"/> within <paramref name="weightType"/>'s tolerance of the reference's
    /// <paramref name="expected"/> logits, with the same argmax where the reference is not nearly tied.
    /// </summary>
    public static void AssertClose(float[] expected, float[] actual, int vocab, string weightType, string what)
    {
        var (max, mean) = Tolerance(weightType);
        LlamaCppParityTests.Compare(expected, actual, vocab, max, mean, what);
    }

    /// <summary>The gap between the best and the second-best logit: a greedy choice is robust when it exceeds the tolerance.</summary>
    public static float TopTwoMargin(ReadOnlySpan<float> logits)
    {
        int top = Sampler.ArgMax(logits);
        float second = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++) if (i != top) second = MathF.Max(second, logits[i]);
        return logits[top] - second;
    }
}
