namespace KvSharp.Tensors;

/// <summary>
/// GELU with its tanh approximation, as ggml computes it on the CPU (GGML_GELU_FP16): inputs at or below -10 give 0,
/// at or above 10 themselves; anything between is rounded to a half and looked up in a table of every half's GELU,
/// rounded to a half too. So the feed-forward of a Gemma model sees llama.cpp's values, not the exact function's
/// (which differ by up to half a half's step, ~1e-3 relative).
/// </summary>
public static class Gelu
{
    private const float CoefficientA = 0.044715f;
    private const float SqrtTwoOverPi = 0.79788456080286535587989211986876f;

    // 65,536 floats (256 KiB), built on first use: the GELU of every half, rounded to a half.
    private static readonly Lazy<float[]> s_table = new(() =>
    {
        var table = new float[65536];
        for (int i = 0; i < table.Length; i++)
            table[i] = (float)(Half)Exact((float)BitConverter.UInt16BitsToHalf((ushort)i));
        return table;
    });

    /// <summary>0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x²))), in float, as ggml_gelu_f32.</summary>
    public static float Exact(float x) => 0.5f * x * (1f + MathF.Tanh(SqrtTwoOverPi * x * (1f + CoefficientA * x * x)));

    /// <summary>ggml_vec_gelu_f32 of one value.</summary>
    public static float Of(float x) => Lookup(s_table.Value, x);

    private static float Lookup(float[] table, float x) =>
        x <= -10f ? 0f : x >= 10f ? x : table[BitConverter.HalfToUInt16Bits((Half)x)];

    /// <summary>x[i] = GELU(x[i]) (ggml_gelu: an ungated feed-forward's activation).</summary>
    public static void Apply(Span<float> x)
    {
        var table = s_table.Value;
        for (int i = 0; i < x.Length; i++) x[i] = Lookup(table, x[i]);
    }

    /// <summary>gate[i] = GELU(gate[i]) x up[i] (GeGLU, ggml_gelu then ggml_mul).</summary>
    public static void GeGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length < gate.Length) throw new ArgumentException($"GeGlu: up has {up.Length} elements, gate has {gate.Length}", nameof(up));
        var table = s_table.Value;
        for (int i = 0; i < gate.Length; i++) gate[i] = Lookup(table, gate[i]) * up[i];
    }
}
