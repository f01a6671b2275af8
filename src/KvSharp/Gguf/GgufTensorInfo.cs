using KvSharp.Tensors;

namespace KvSharp.Gguf;

/// <summary>
/// A tensor's description in a GGUF file. <see cref="Dimensions"/> are in GGML order: ne0 (the contiguous,
/// fastest-varying axis) first. <see cref="Offset"/> is relative to the start of the tensor data section.
/// </summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dimensions, long Offset)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dimensions) n *= d;
            return n;
        }
    }

    /// <summary>Bytes of tensor data: rows of ne0 elements each, in blocks of the type.</summary>
    public long ByteSize => GgmlTypes.RowBytes(Type, Dimensions[0]) * (ElementCount / Dimensions[0]);

    public string ShapeText => FormatShape(Dimensions);

    internal static string FormatShape(long[] dimensions) => "[" + string.Join(", ", dimensions) + "]";
}
