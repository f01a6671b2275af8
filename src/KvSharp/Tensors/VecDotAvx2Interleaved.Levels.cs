using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary>
    /// IQ4_NL or MXFP4 groups (<typeparamref name="K"/>; Q4_0's group layout but for the scales: the eight rows' f16 d or
    /// E8M0 bytes, then vector k holding packed bytes 4k..4k+3 of each row, low nibbles elements 4k.., high nibbles
    /// 16 + 4k..): weight vector s is the levels of vector s's low nibbles (s &lt; 4) or of vector s - 4's high nibbles,
    /// one vpshufb from the level table. The levels are signed bytes like Q8_0's quants, so from there the Q8_0 kernels
    /// run as they are, sharing each lookup and |levels| across the tokens, and every output is
    /// <see cref="VecDotScalar.Iq4Nl"/>'s (<see cref="VecDotScalar.Mxfp4"/>'s) block order: the exact block integer, then
    /// fma(dx·dy, sum, acc) with dx the same float (<see cref="NibbleLevelScales"/>).
    /// </summary>
    private readonly struct LevelWeights<K> : ISignedWeights where K : INibbleLevels
    {
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 8 * K.BlockBytes; }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Scales(byte* block) => NibbleLevelScales.Scales<K>(block);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Vector(byte* block, int s) => Levels<K>(block + 8 * NibbleLevelScales.ScaleBytes<K>() + 32 * (s & 3), s);
    }

    /// <summary>
    /// <see cref="LevelWeights{K}"/> for the first or second group (<typeparamref name="H"/>) of a pair in a paired copy
    /// (<see cref="InterleavedRows.PairedGroups"/>): given the pair's first byte, the group's scales are the pair block's
    /// first or second eight, and its vector k the first or second half of the 64 bytes for k.
    /// </summary>
    private readonly struct LevelsOfPair<K, H> : ISignedWeights where K : INibbleLevels where H : IPairHalf
    {
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 16 * K.BlockBytes; }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Scales(byte* block) => NibbleLevelScales.Scales<K>(block + 8 * NibbleLevelScales.ScaleBytes<K>() * (H.Half - 1));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Vector(byte* block, int s)
            => Levels<K>(block + 16 * NibbleLevelScales.ScaleBytes<K>() + 32 * (H.Half - 1) + 64 * (s & 3), s);
    }

    /// <summary>
    /// Weight vector s's levels from the quant vector at <paramref name="quants"/> (vector s &amp; 3 of the group): its low
    /// nibbles for s &lt; 4, else its high ones, looked up in <typeparamref name="K"/>'s level table.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Levels<K>(byte* quants, int s) where K : INibbleLevels
    {
        Vector256<byte> v = Avx.LoadVector256(quants);
        Vector256<byte> nibbles = Vector256.ShiftRightLogical(v.AsUInt16(), 4 * (s >> 2)).AsByte() & Vector256.Create((byte)0x0F);
        return Avx2.Shuffle(K.Table, nibbles.AsSByte());
    }

    /// <summary>Whether <paramref name="type"/> is a nibble-level type (IQ4_NL, MXFP4) with group kernels here (<see cref="LevelKernels"/>).</summary>
    public static bool IsLevelType(GgmlType type) => type is GgmlType.IQ4_NL or GgmlType.MXFP4;

    /// <summary>The group kernels of IQ4_NL or MXFP4 by one, four and eight tokens, on AVX-VNNI (<paramref name="vnni"/>) or AVX2.</summary>
    public static void LevelKernels(GgmlType type, bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
    {
        switch (type)
        {
            case GgmlType.IQ4_NL: SignedKernels<LevelWeights<Iq4NlLevels>>(vnni, out one, out four, out eight); break;
            case GgmlType.MXFP4: SignedKernels<LevelWeights<Mxfp4Levels>>(vnni, out one, out four, out eight); break;
            default: throw new NotSupportedException($"VecDotAvx2Interleaved: {type} is not a nibble-level type (IQ4_NL, MXFP4)");
        }
    }

    /// <summary>The IQ4_NL or MXFP4 group kernels for half <typeparamref name="H"/> of a paired copy's pair.</summary>
    private static void LevelPairKernels<H>(GgmlType type, bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where H : IPairHalf
    {
        if (type == GgmlType.MXFP4) SignedKernels<LevelsOfPair<Mxfp4Levels, H>>(vnni, out one, out four, out eight);
        else SignedKernels<LevelsOfPair<Iq4NlLevels, H>>(vnni, out one, out four, out eight);
    }

    /// <summary>A signed-weight group type's kernels by one, four and eight tokens: AVX-VNNI's where <paramref name="vnni"/>, else the sign trick's.</summary>
    private static void SignedKernels<TWeights>(bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where TWeights : ISignedWeights
    {
        if (vnni) SignedKernels<TWeights, VnniOffset>(out one, out four, out eight);
        else SignedKernels<TWeights, SignTrick>(out one, out four, out eight);
    }

    private static void SignedKernels<TWeights, TMultiply>(out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where TWeights : ISignedWeights where TMultiply : IQ8Multiply
    {
        one = &SignedX1<TWeights, TMultiply>;
        four = &SignedX4<TWeights, TMultiply>;
        eight = &SignedX8<TWeights, TMultiply>;
    }
}
