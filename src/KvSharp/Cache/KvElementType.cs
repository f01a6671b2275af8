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
}

public static class KvElementTypes
{
    public static int BytesPerElement(this KvElementType type) => type switch
    {
        KvElementType.F32 => sizeof(float),
        KvElementType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown KV element type"),
    };

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

    /// <summary>Parses "f32" / "f16" (any case), naming the accepted values when it cannot.</summary>
    public static KvElementType Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "f32" or "float32" => KvElementType.F32,
        "f16" or "float16" or "half" => KvElementType.F16,
        _ => throw new ArgumentException($"unknown KV cache type '{text}' (expected f32 or f16)", nameof(text)),
    };
}
