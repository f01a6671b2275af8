using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Tests.Cache;

/// <summary>
/// A KV element type defined outside the library, as a new type would be added: bfloat16 (a float's upper 16 bits,
/// rounded to nearest-even). It implements only the storage members, no in-register loads, so attention reads its rows
/// through a tile of floats; nothing in the caches or the kernel names it.
/// </summary>
public readonly struct KvBf16 : IKvElement<KvBf16>
{
    public static string Name => "BF16";

    public static int RowBytes(int headDim) => headDim * 2;

    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side)
    {
        var bits = MemoryMarshal.Cast<byte, ushort>(row);
        for (int i = 0; i < source.Length; i++) bits[i] = ToBits(source[i]);
    }

    public static void Read(ref byte row, ref byte side, int headDim, ref float destination)
    {
        for (int i = 0; i < headDim; i++)
            Unsafe.Add(ref destination, i) = FromBits(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref row, 2 * i)));
    }

    /// <summary>The float a stored element stands for: x rounded to bfloat16.</summary>
    public static float Round(float x) => FromBits(ToBits(x));

    private static ushort ToBits(float x)
    {
        uint u = BitConverter.SingleToUInt32Bits(x);
        if (float.IsNaN(x)) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }

    private static float FromBits(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
