using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>The feed-forward block's gate activation.</summary>
public enum FeedForwardActivation
{
    /// <summary>SwiGLU: silu(gate) x up (llama, qwen, phi3).</summary>
    Silu,
    /// <summary>GeGLU: gelu(gate) x up with GELU's tanh approximation, as ggml computes it (gemma).</summary>
    GeluTanh,
    /// <summary>
    /// OpenAI's SwiGLU (gpt-oss): the gate clamped to at most <see cref="FeedForwardActivations.SwiGluLimit"/> and up to
    /// ±limit, then gate x sigmoid(1.702 gate) x (up + 1), as ggml_swiglu_oai computes it.
    /// </summary>
    SwiGluClamped,
}

public static class FeedForwardActivations
{
    /// <summary>gpt-oss's SwiGLU constants, which llama.cpp hard-codes (GGUF has no keys for them).</summary>
    public const float SwiGluAlpha = 1.702f, SwiGluLimit = 7f;

    /// <summary>gate = activation(gate) x up, element-wise: one row of a dense block's, an expert's or a shared expert's.</summary>
    public static void Apply(this FeedForwardActivation activation, Span<float> gate, ReadOnlySpan<float> up)
    {
        if (activation == FeedForwardActivation.GeluTanh) Gelu.GeGlu(gate, up);
        else if (activation == FeedForwardActivation.SwiGluClamped) SwiGluClamped(gate, up);
        else FloatOps.SwiGlu(gate, up);
    }

    /// <summary>x = activation(x), element-wise: an ungated feed-forward's (phi2, starcoder2, gpt2: GELU).</summary>
    public static void Apply(this FeedForwardActivation activation, Span<float> x)
    {
        if (activation == FeedForwardActivation.GeluTanh) Gelu.Apply(x);
        else
            for (int i = 0; i < x.Length; i++) x[i] /= 1f + MathF.Exp(-x[i]);
    }

    /// <summary>ggml_swiglu_oai, element by element: x = min(gate, limit), g = clamp(up, -limit, limit), x / (1 + exp(-alpha x)) x (g + 1).</summary>
    private static void SwiGluClamped(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float x = MathF.Min(gate[i], SwiGluLimit), g = MathF.Max(MathF.Min(up[i], SwiGluLimit), -SwiGluLimit);
            gate[i] = x / (1f + MathF.Exp(SwiGluAlpha * -x)) * (g + 1f);
        }
    }
}
