using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2
{
    /// <summary>
    /// The 32 levels of one IQ4 block's 16 nibble bytes, as ggml looks them up: two 128-bit vpshufb from the level
    /// table (low nibbles, high nibbles), then joined. One 256-bit vpshufb on <see cref="Nibbles32"/> gives the same
    /// bytes and was no faster (time ratio 0.98, quartiles 0.95-1.03: in-process A/B, one thread, 2048 x 2048
    /// IQ4_NL rows, 60 interleaved rounds).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<sbyte> Iq4Levels(Vector128<sbyte> table, byte* qs)
    {
        Vector128<byte> bits = Sse2.LoadVector128(qs);
        Vector128<byte> m4 = Vector128.Create((byte)0x0F);
        return Vector256.Create(Ssse3.Shuffle(table, Sse2.And(bits, m4).AsSByte()),
            Ssse3.Shuffle(table, Sse2.And(Sse2.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), m4).AsSByte()));
    }

    internal static Vector128<sbyte> Iq4Table => Vector128.Create(Iq4NlValues);

    /// <summary>Signed bytes times signed bytes into 16 int16 pair sums, ggml's mul_add_epi8 (|x| * sign(y, x)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> MulAddI8(Vector256<sbyte> x, Vector256<sbyte> y) =>
        Avx2.MultiplyAddAdjacent(Avx2.Sign(x, x).AsByte(), Avx2.Sign(y, x));

    /// <summary>IQ4_NL x Q8_0 in block-sequential order (<see cref="VecDotScalar.Iq4Nl"/>), like <see cref="Q4_0"/>.</summary>
    public static float Iq4Nl(byte* x, byte* y, int nb) => NibbleLevelRow<Iq4NlLevels>(x, y, nb);

    /// <summary>
    /// A nibble-level row (IQ4_NL, MXFP4) x Q8_0 in block-sequential order (<see cref="VecDotScalar.NibbleLevelRow{K}"/>):
    /// per block the levels looked up by vpshufb, the exact integer dot, then acc = fma(d·dy, sum, acc).
    /// </summary>
    internal static float NibbleLevelRow<K>(byte* x, byte* y, int nb) where K : INibbleLevels
    {
        Vector128<sbyte> table = K.Table.GetLower();
        int quants = NibbleLevelScales.ScaleBytes<K>();
        float acc = 0;
        for (int ib = 0; ib < nb; ib++, x += K.BlockBytes, y += Q8_0Bytes)
            acc = MathF.FusedMultiplyAdd(K.Scale(x) * F16(y), HSumInt(MulSumI8Pairs(Iq4Levels(table, x + quants), Avx.LoadVector256((sbyte*)(y + 2)))), acc);
        return acc;
    }
}
