using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>How each cached key and value element is stored.</summary>
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
}

public static class KvElementTypes
{
    /// <summary>Bytes per element of F32 and F16; a Q8_0 element takes a byte plus its share of a scale (<see cref="Bytes"/>).</summary>
    public static int BytesPerElement(this KvElementType type) => type switch
    {
        KvElementType.F32 => sizeof(float),
        KvElementType.F16 => 2,
        KvElementType.Q8_0 => throw new ArgumentException("a Q8_0 element is a byte plus a share of its group's scale; use Bytes", nameof(type)),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown KV element type"),
    };

    /// <summary>Bytes that <paramref name="elements"/> elements (whole rows of <paramref name="headDim"/>) take.</summary>
    public static long Bytes(this KvElementType type, long elements, int headDim) => type switch
    {
        KvElementType.Q8_0 => elements + elements / Q8Group(headDim) * sizeof(float),
        _ => elements * type.BytesPerElement(),
    };

    /// <summary>Elements per Q8_0 scale: 32 (llama.cpp's block), or a whole row where head_dim is not a multiple of 32.</summary>
    public static int Q8Group(int headDim) => headDim % Q8Block == 0 ? Q8Block : headDim;

    private const int Q8Block = 32;

    /// <summary>
    /// Stores one row of keys or values as <typeparamref name="TElement"/>: copied for float, rounded to nearest-even
    /// for Half. Every cache writes through here, so the contiguous and paged caches store the same bits.
    /// </summary>
    internal static void Store<TElement>(ReadOnlySpan<float> row, Span<TElement> destination) where TElement : unmanaged
    {
        if (typeof(TElement) == typeof(float)) row.CopyTo(MemoryMarshal.Cast<TElement, float>(destination));
        else if (typeof(TElement) == typeof(Half)) HalfConvert.ToHalf(row, MemoryMarshal.Cast<TElement, ushort>(destination));
        else throw new NotSupportedException($"KV elements of {typeof(TElement).Name} are not supported (float or Half)");
    }

    /// <summary>Parses "f32" / "f16" / "q8_0" (any case), naming the accepted values when it cannot.</summary>
    public static KvElementType Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "f32" or "float32" => KvElementType.F32,
        "f16" or "float16" or "half" => KvElementType.F16,
        "q8_0" or "q8" => KvElementType.Q8_0,
        _ => throw new ArgumentException($"unknown KV cache type '{text}' (expected f32, f16 or q8_0)", nameof(text)),
    };
}
