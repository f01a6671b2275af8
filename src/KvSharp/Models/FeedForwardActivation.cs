using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>The feed-forward block's gate activation.</summary>
public enum FeedForwardActivation
{
    /// <summary>SwiGLU: silu(gate) x up (llama, qwen, phi3).</summary>
    Silu,
    /// <summary>GeGLU: gelu(gate) x up with GELU's tanh approximation, as ggml computes it (gemma).</summary>
    GeluTanh,
}

public static class FeedForwardActivations
{
    /// <summary>gate = activation(gate) x up, element-wise: one row of a dense block's, an expert's or a shared expert's.</summary>
    public static void Apply(this FeedForwardActivation activation, Span<float> gate, ReadOnlySpan<float> up)
    {
        if (activation == FeedForwardActivation.GeluTanh) Gelu.GeGlu(gate, up);
        else FloatOps.SwiGlu(gate, up);
    }

    /// <summary>x = activation(x), element-wise: an ungated feed-forward's (phi2, starcoder2, gpt2: GELU).</summary>
    public static void Apply(this FeedForwardActivation activation, Span<float> x)
    {
        if (activation == FeedForwardActivation.GeluTanh) Gelu.Apply(x);
        else
            for (int i = 0; i < x.Length; i++) x[i] /= 1f + MathF.Exp(-x[i]);
    }
}
