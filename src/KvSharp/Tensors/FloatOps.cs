namespace KvSharp.Tensors;

/// <summary>Element-wise float kernels of the forward pass, computed as ggml does.</summary>
public static class FloatOps
{
    /// <summary>ggml_rms_norm: the sum of squares in double, scale = 1/sqrtf(mean + eps), then the weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> dst)
    {
        double sum = 0;
        foreach (float v in x) sum += (double)(v * v);
        float scale = 1f / MathF.Sqrt((float)(sum / x.Length) + eps);
        for (int i = 0; i < x.Length; i++) dst[i] = x[i] * scale * weight[i];
    }

    /// <summary>gate = silu(gate) * up.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++) gate[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
    }

    public static void Add(Span<float> dst, ReadOnlySpan<float> src)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] += src[i];
    }
}
