namespace KvSharp.Cache;

/// <summary>
/// How each cached key and value element is stored: the built-in types, each implemented by one strategy
/// (<see cref="KvSharp.Tensors.KvF32"/>, <see cref="KvSharp.Tensors.KvF16"/>, <see cref="KvSharp.Tensors.KvQ8"/>,
/// <see cref="KvSharp.Tensors.KvQ4"/>, <see cref="KvSharp.Tensors.KvKivi{TBits, TAxis}"/>;
/// <see cref="KvElementFormat.Of(KvElementType)"/> maps one to the other).
/// </summary>
public enum KvElementType
{
    /// <summary>32-bit floats: the keys and values exactly as the forward pass computed them.</summary>
    F32,
    /// <summary>
    /// binary16 (llama.cpp's default cache type): half the memory per token, so twice the tokens in a budget and half
    /// the bytes a decode step reads. Values are rounded to nearest-even on write and widened exactly on read.
    /// </summary>
    F16,
    /// <summary>
    /// 8-bit integers with a scale per group, like llama.cpp's q8_0 cache type: each group of 32 consecutive elements
    /// of a row (a whole row where head_dim is not a multiple of 32) is stored as q = round(x / d), d = max|x| / 127,
    /// and read back as q x d. The scale is kept as a float, not binary16 as in llama.cpp's blocks: a binary16 scale
    /// turns subnormal for groups whose largest value is below ~0.008 and then loses most of their precision.
    /// 1.125 bytes per element at head_dim 32 or more in groups of 32: 3.6x the tokens of F32 in a budget. Attention
    /// reads the values q x d, exactly as a float cache holding them would.
    /// </summary>
    Q8_0,
    /// <summary>
    /// 4-bit integers with a scale per group, like llama.cpp's q4_0 cache type: each group of 32 consecutive elements
    /// (a whole row where head_dim is not a multiple of 32) is stored as q = round(x / d) + 8 in 0..15, d = m / -8 where
    /// m is the group's element of largest magnitude, and read back as (q - 8) x d; the scale is kept as a float, as
    /// for <see cref="Q8_0"/>. 0.625 bytes per element at head_dim 32 or more in groups of 32: 6.4x the tokens of F32
    /// in a budget, at an error of up to half a step (m / 8) per element. Attention reads the values (q - 8) x d,
    /// exactly as a float cache holding them would.
    /// </summary>
    Q4_0,
    /// <summary>
    /// KIVI 4-bit (<see cref="KvSharp.Tensors.KvKivi{TBits, TAxis}"/>): keys quantized per channel and values per token,
    /// 32 rows at a time, to 4-bit codes with a binary16 min and scale per set; the newest rows stay exact (values until
    /// their group fills, keys 64 rows longer). Keys take 0.5 bytes per element plus 4 x head_dim bytes per 32 rows,
    /// values 0.5 bytes plus 4 bytes per group of 32 channels (of the row, where head_dim is not a multiple of 32),
    /// plus a constant 96 key and 32 value rows of floats per head (<see cref="KvElementFormat.ExactBytesPerSequence"/>).
    /// Contiguous or paged (blocks of a multiple of 32, no prefix sharing); its rows are quantized in groups and cannot
    /// be moved (context shift) or overwritten in place (windows, eviction).
    /// </summary>
    Kivi4,
    /// <summary>KIVI 2-bit: <see cref="Kivi4"/> with 2-bit codes (4 levels per set).</summary>
    Kivi2,
}

public static class KvElementTypes
{
    /// <summary>Parses "f32" / "f16" / "q8_0" / "q4_0" / "kivi4" / "kivi2" (any case), naming the accepted values when it cannot.</summary>
    public static KvElementType Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "f32" or "float32" => KvElementType.F32,
        "f16" or "float16" or "half" => KvElementType.F16,
        "q8_0" or "q8" => KvElementType.Q8_0,
        "q4_0" or "q4" => KvElementType.Q4_0,
        "kivi4" => KvElementType.Kivi4,
        "kivi2" => KvElementType.Kivi2,
        _ => throw new ArgumentException($"unknown KV cache type '{text}' (expected f32, f16, q8_0, q4_0, kivi4 or kivi2)", nameof(text)),
    };
}
