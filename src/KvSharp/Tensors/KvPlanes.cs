namespace KvSharp.Tensors;

/// <summary>
/// The origins of a set of stored rows: their element plane and their side-data plane. Row r's elements start at
/// <see cref="Elements"/> + r x RowBytes and its side data at <see cref="Side"/> + r x SideBytes
/// (<see cref="IKvElement{TSelf}"/>), so a type whose loads need side data (Q8_0's scales) finds it from an element's
/// address alone. The default value serves types without side data, which never ask.
/// </summary>
public readonly ref struct KvPlanes
{
    public readonly ref byte Elements;
    public readonly ref byte Side;

    public KvPlanes(ref byte elements, ref byte side)
    {
        Elements = ref elements;
        Side = ref side;
    }
}
