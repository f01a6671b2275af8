using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace KvSharp.Tensors;

/// <summary>KV elements as 32-bit floats: the keys and values exactly as the forward pass computed them, read as is.</summary>
public readonly struct KvF32 : IKvElement<KvF32>
{
    public static string Name => "F32";

    public static int RowBytes(int headDim) => headDim * sizeof(float);

    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) => source.CopyTo(MemoryMarshal.Cast<byte, float>(row));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        Unsafe.CopyBlockUnaligned(ref Unsafe.As<float, byte>(ref destination), ref row, (uint)(headDim * sizeof(float)));

    public static int MaxQueriesInRegisters(int headDim) => int.MaxValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> lower, out Vector256<float> upper)
    {
        lower = Vector256.LoadUnsafe(ref Unsafe.As<byte, float>(ref row), i);
        upper = Vector256.LoadUnsafe(ref Unsafe.As<byte, float>(ref row), i + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ref byte row, nuint i, scoped in KvPlanes planes) => Vector256.LoadUnsafe(ref Unsafe.As<byte, float>(ref row), i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(ref byte row, nint i, scoped in KvPlanes planes) => Unsafe.Add(ref Unsafe.As<byte, float>(ref row), i);
}
