namespace KvSharp.Tensors;

/// <summary>Element types of tensors as numbered in GGML/GGUF files.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>Block layout of each element type: how many elements one block holds and its size in bytes.</summary>
public static class GgmlTypes
{
    /// <summary>Elements per block (1 for plain types, 32 for legacy quants, 256 for K-quants).</summary>
    public static int BlockSize(GgmlType type) => type switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.I8 or GgmlType.I16
            or GgmlType.I32 or GgmlType.I64 or GgmlType.F64 => 1,
        GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0
            or GgmlType.Q8_1 or GgmlType.IQ4_NL or GgmlType.MXFP4 => 32,
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K
            or GgmlType.Q8_K or GgmlType.IQ2_XXS or GgmlType.IQ2_XS or GgmlType.IQ3_XXS
            or GgmlType.IQ1_S or GgmlType.IQ3_S or GgmlType.IQ2_S or GgmlType.IQ4_XS
            or GgmlType.IQ1_M or GgmlType.TQ1_0 or GgmlType.TQ2_0 => 256,
        _ => throw new NotSupportedException($"unknown GGML tensor type {(uint)type}"),
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 => 2,
        GgmlType.BF16 => 2,
        GgmlType.I8 => 1,
        GgmlType.I16 => 2,
        GgmlType.I32 => 4,
        GgmlType.I64 => 8,
        GgmlType.F64 => 8,
        GgmlType.Q4_0 => 2 + 16,
        GgmlType.Q4_1 => 2 + 2 + 16,
        GgmlType.Q5_0 => 2 + 4 + 16,
        GgmlType.Q5_1 => 2 + 2 + 4 + 16,
        GgmlType.Q8_0 => 2 + 32,
        GgmlType.Q8_1 => 2 + 2 + 32,
        GgmlType.Q2_K => 16 + 64 + 2 + 2,
        GgmlType.Q3_K => 32 + 64 + 12 + 2,
        GgmlType.Q4_K => 2 + 2 + 12 + 128,
        GgmlType.Q5_K => 2 + 2 + 12 + 32 + 128,
        GgmlType.Q6_K => 128 + 64 + 16 + 2,
        GgmlType.Q8_K => 4 + 256 + 32,
        GgmlType.IQ4_NL => 2 + 16,
        GgmlType.IQ2_XXS => 2 + 64,
        GgmlType.IQ2_XS => 2 + 64 + 8,
        GgmlType.IQ3_XXS => 2 + 96,
        GgmlType.IQ1_S => 2 + 32 + 16,
        GgmlType.IQ3_S => 2 + 64 + 32 + 8 + 4,
        GgmlType.IQ2_S => 2 + 64 + 16,
        GgmlType.IQ4_XS => 2 + 2 + 4 + 128,
        GgmlType.IQ1_M => 32 + 16 + 8,
        GgmlType.TQ1_0 => 2 + 48 + 4,
        GgmlType.TQ2_0 => 2 + 64,
        GgmlType.MXFP4 => 1 + 16,
        _ => throw new NotSupportedException($"unknown GGML tensor type {(uint)type}"),
    };

    /// <summary>True when the type is a known GGML type (the file may still use one we cannot compute with).</summary>
    public static bool IsKnown(GgmlType type) => Enum.IsDefined(type);

    /// <summary>Types KvSharp can load as weights and compute with.</summary>
    public static bool IsSupportedWeight(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q5_1
        or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K
        or GgmlType.Q3_K or GgmlType.Q2_K
        or GgmlType.Q4_1 or GgmlType.IQ4_NL or GgmlType.IQ4_XS or GgmlType.MXFP4;

    /// <summary>Bytes one row of <paramref name="elements"/> elements occupies; the row length must be a whole number of blocks.</summary>
    public static long RowBytes(GgmlType type, long elements)
    {
        int bs = BlockSize(type);
        if (elements % bs != 0)
            throw new ArgumentException($"a row of {elements} elements is not a whole number of {type} blocks of {bs}");
        return elements / bs * BlockBytes(type);
    }

    /// <summary>
    /// The type llama.cpp's CPU backend converts activations to before a dot product with a weight of this type
    /// (ggml's vec_dot_type). Matching it is what makes our logits match llama.cpp's.
    /// </summary>
    public static GgmlType VecDotType(GgmlType weightType) => weightType switch
    {
        GgmlType.F32 => GgmlType.F32,
        GgmlType.F16 => GgmlType.F16,
        GgmlType.BF16 => GgmlType.BF16,
        GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q8_0 => GgmlType.Q8_0,
        GgmlType.IQ4_NL or GgmlType.MXFP4 => GgmlType.Q8_0,
        GgmlType.Q4_1 or GgmlType.Q5_1 => GgmlType.Q8_1,
        GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K => GgmlType.Q8_K,
        GgmlType.Q3_K or GgmlType.Q2_K or GgmlType.IQ4_XS => GgmlType.Q8_K,
        _ => throw new NotSupportedException($"tensor type {weightType} is not supported for computation"),
    };
}
