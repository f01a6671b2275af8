using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>The sixteen 6-bit sub-block scales of a Q3_K block, packed in its 12 scale bytes.</summary>
internal static unsafe class Q3KScales
{
    /// <summary>
    /// Unpacks the 12 bytes at <paramref name="p"/> with ggml's aux trick: byte k of the result is the stored scale
    /// of sub-block k (0..63; the value used is that minus 32). Low nibbles: bytes 0..7 hold sub-blocks 0..7, their
    /// high nibbles 8..15; bytes 8..11 hold the top two bits, sub-block k at bits 2(k/4) of byte 8 + k%4.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<uint> Unpack(byte* p)
    {
        const uint kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
        uint a0 = *(uint*)p, a1 = *(uint*)(p + 4), t = *(uint*)(p + 8);
        return Vector128.Create(
            (a0 & kmask2) | ((t & kmask1) << 4),
            (a1 & kmask2) | (((t >> 2) & kmask1) << 4),
            ((a0 >> 4) & kmask2) | (((t >> 4) & kmask1) << 4),
            ((a1 >> 4) & kmask2) | (((t >> 6) & kmask1) << 4));
    }

    /// <summary>The sixteen scales of the Q3_K super-block at <paramref name="block"/> as used (stored − 32), widened to int16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> Signed16(byte* block) =>
        Avx2.ConvertToVector256Int16(Sse2.Subtract(Unpack(block + BlockLayouts.Q3_K_Scales).AsSByte(), Vector128.Create((sbyte)32)));
}
