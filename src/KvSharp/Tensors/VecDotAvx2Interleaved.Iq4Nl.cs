using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary>
    /// IQ4_NL groups (Q4_0's group layout: the eight d, then vector k holding packed bytes 4k..4k+3 of each row, low
    /// nibbles elements 4k.., high nibbles 16 + 4k..): weight vector s is the levels of vector s's low nibbles (s &lt; 4)
    /// or of vector s - 4's high nibbles, one vpshufb from the level table. The levels are signed bytes like Q8_0's
    /// quants, so from there the Q8_0 kernels run as they are, sharing each lookup and |levels| across the tokens, and
    /// every output is <see cref="VecDotScalar.Iq4Nl"/>'s block order.
    /// </summary>
    private readonly struct Iq4NlWeights : ISignedWeights
    {
        public static int GroupBlockBytes => 8 * IQ4_NLBytes;
        public static int ScalesAt => 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Vector(byte* block, int s) => Levels(block + 16 + 32 * (s & 3), s);
    }

    /// <summary>
    /// <see cref="Iq4NlWeights"/> for the first or second group (<typeparamref name="H"/>) of a pair in a paired copy
    /// (<see cref="InterleavedRows.PairedGroups"/>): given the pair's first byte, the group's scales are the pair block's
    /// first or second 16 bytes and its vector k the first or second half of the 64 bytes for k.
    /// </summary>
    private readonly struct Iq4NlOfPair<H> : ISignedWeights where H : IPairHalf
    {
        public static int GroupBlockBytes => 16 * IQ4_NLBytes;
        public static int ScalesAt { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 16 * (H.Half - 1); }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Vector(byte* block, int s) => Levels(block + 32 * H.Half + 64 * (s & 3), s);
    }

    /// <summary>
    /// Weight vector s's levels from the quant vector at <paramref name="quants"/> (vector s &amp; 3 of the group): its low
    /// nibbles for s &lt; 4, else its high ones, looked up in the level table.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Levels(byte* quants, int s)
    {
        Vector256<byte> v = Avx.LoadVector256(quants);
        Vector256<byte> nibbles = Vector256.ShiftRightLogical(v.AsUInt16(), 4 * (s >> 2)).AsByte() & Vector256.Create((byte)0x0F);
        return Avx2.Shuffle(VecDotAvx2.Iq4Table2, nibbles.AsSByte());
    }

    /// <summary>The IQ4_NL group kernels (AVX2, or AVX-VNNI where <paramref name="vnni"/>) for half <typeparamref name="H"/> of a paired copy's pair.</summary>
    private static void Iq4NlPairKernels<H>(bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where H : IPairHalf
    {
        if (vnni)
        {
            one = &SignedX1<Iq4NlOfPair<H>, VnniOffset>;
            four = &SignedX4<Iq4NlOfPair<H>, VnniOffset>;
            eight = &SignedX8<Iq4NlOfPair<H>, VnniOffset>;
        }
        else
        {
            one = &SignedX1<Iq4NlOfPair<H>, SignTrick>;
            four = &SignedX4<Iq4NlOfPair<H>, SignTrick>;
            eight = &SignedX8<Iq4NlOfPair<H>, SignTrick>;
        }
    }

    /// <summary>Eight interleaved IQ4_NL rows x one token (<see cref="Iq4NlWeights"/>).</summary>
    public static void Iq4Nlx1(byte* w, byte* y, int n, float* output) => SignedX1<Iq4NlWeights, SignTrick>(w, y, n, output);

    /// <summary>Eight interleaved IQ4_NL rows x four tokens (<see cref="Iq4NlWeights"/>).</summary>
    public static void Iq4Nlx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX4<Iq4NlWeights, SignTrick>(w, y, yStride, n, output, outStride);

    /// <summary>Eight interleaved IQ4_NL rows x eight tokens (<see cref="Iq4NlWeights"/>).</summary>
    public static void Iq4Nlx8(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX8<Iq4NlWeights, SignTrick>(w, y, yStride, n, output, outStride);
}
