using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary>
    /// Eight interleaved IQ4_NL rows (Q4_0's group layout: the eight d, then vector k holding packed bytes 4k..4k+3 of
    /// each row) x one token, with <see cref="VecDotAvx2.Iq4Nl"/>'s bits per row. That kernel keeps ggml's order: per row
    /// eight float lanes (lane l: elements 4l..4l+3 of every block), even blocks in one set and odd blocks in another,
    /// added and reduced pairwise at the end, an odd last block by one FMA. Here vector (l, parity) holds that lane of
    /// the eight rows, so the sixteen accumulators are the sixteen lanes and the reduction is done lane-wise; the level
    /// lookup runs on 64 nibbles per vpshufb and the block scales on eight rows at once, and no row ends in a
    /// horizontal sum. Through MatMul on one thread, in-process A/B against the plain matrix (the single-row kernel),
    /// median of 21-41 alternated rounds: 2.1-2.5x over 2048x2048, 768x2048, 2048x768 (2.5x with AVX-512 code
    /// generation off), 1.55x over 8192x4096 (from L3 and memory).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Iq4Nlx1(byte* w, byte* y, int n, float* output)
    {
        const int B = 8 * IQ4_NLBytes; // a group's block
        int nb = n / QK, ib = 0;
        Vector256<sbyte> table = VecDotAvx2.Iq4Table2;
        Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default, e4 = default, e5 = default, e6 = default, e7 = default;
        Vector256<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
        for (; ib + 1 < nb; ib += 2, w += 2 * B, y += 2 * Q8_0Bytes)
        {
            Vector256<float> d = Avx.Multiply(VecDotAvx2.HalfToSingle((ushort*)w), Vector256.Create(F16(y)));
            Iq4NlLanes(w + 16, table, d, y + 2, ref e0, ref e4);
            Iq4NlLanes(w + 48, table, d, y + 6, ref e1, ref e5);
            Iq4NlLanes(w + 80, table, d, y + 10, ref e2, ref e6);
            Iq4NlLanes(w + 112, table, d, y + 14, ref e3, ref e7);
            byte* v = w + B, z = y + Q8_0Bytes;
            d = Avx.Multiply(VecDotAvx2.HalfToSingle((ushort*)v), Vector256.Create(F16(z)));
            Iq4NlLanes(v + 16, table, d, z + 2, ref o0, ref o4);
            Iq4NlLanes(v + 48, table, d, z + 6, ref o1, ref o5);
            Iq4NlLanes(v + 80, table, d, z + 10, ref o2, ref o6);
            Iq4NlLanes(v + 112, table, d, z + 14, ref o3, ref o7);
        }
        Vector256<float> sum = HSum8Lanes(Avx.Add(e0, o0), Avx.Add(e1, o1), Avx.Add(e2, o2), Avx.Add(e3, o3),
            Avx.Add(e4, o4), Avx.Add(e5, o5), Avx.Add(e6, o6), Avx.Add(e7, o7));
        if (ib < nb)
        {
            Vector256<int> isum = Avx2.Add(
                Avx2.Add(Iq4NlLaneSums(w + 16, table, y + 2), Iq4NlLaneSums(w + 48, table, y + 6)),
                Avx2.Add(Iq4NlLaneSums(w + 80, table, y + 10), Iq4NlLaneSums(w + 112, table, y + 14)));
            sum = Fma.MultiplyAdd(Avx.Multiply(VecDotAvx2.HalfToSingle((ushort*)w), Vector256.Create(F16(y))), Avx.ConvertToVector256Single(isum), sum);
        }
        Avx.Store(output, sum);
    }

    /// <summary>
    /// Eight interleaved IQ4_NL rows x four tokens: <see cref="Iq4Nlx1"/> per token, the group then warm in L1. A kernel
    /// sharing each lookup across the tokens would need sixteen accumulators per token (see Iq4Nlx1). Through MatMul on
    /// one thread, in-process A/B against the plain matrix (<see cref="VecDotAvx2Multi.Iq4Nlx4"/>, one row by four
    /// tokens, which still serves the rows past the last group), 4 and 8 tokens over 2048x2048, 768x2048, 2048x768:
    /// 0.97-1.16x, so prefill stays where it was; decode (<see cref="Iq4Nlx1"/> alone) gains 2.3-2.5x.
    /// </summary>
    public static void Iq4Nlx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => TokenByToken(&Iq4Nlx1, w, y, yStride, n, output, outStride);

    /// <summary>A one-token group kernel run for four tokens in turn (the group stays in L1 between them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TokenByToken(delegate*<byte*, byte*, int, float*, void> x1, byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        x1(w, y, n, output);
        x1(w, y + yStride, n, output + outStride);
        x1(w, y + 2 * yStride, n, output + 2 * outStride);
        x1(w, y + 3 * yStride, n, output + 3 * outStride);
    }

    /// <summary>
    /// <see cref="VecDotAvx2.HSum8"/> of each row's eight lanes, row r's lane l in lane r of <paramref name="l0"/>..
    /// <paramref name="l7"/>: (l4 + l0) + (l6 + l2), (l5 + l1) + (l7 + l3), then those two, as the 128-bit halves fold.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HSum8Lanes(Vector256<float> l0, Vector256<float> l1, Vector256<float> l2, Vector256<float> l3,
        Vector256<float> l4, Vector256<float> l5, Vector256<float> l6, Vector256<float> l7)
        => Avx.Add(Avx.Add(Avx.Add(l4, l0), Avx.Add(l6, l2)), Avx.Add(Avx.Add(l5, l1), Avx.Add(l7, l3)));

    /// <summary>
    /// Vector k of a group block (at <paramref name="p"/>) times a token's elements 4k..4k+3 (at <paramref name="q"/>)
    /// and 16+4k..: lane k (low nibbles) and lane 4+k (high nibbles) of the eight rows, each added with one FMA by d.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Iq4NlLanes(byte* p, Vector256<sbyte> table, Vector256<float> d, byte* q, ref Vector256<float> lo, ref Vector256<float> hi)
    {
        Iq4NlLevels(p, table, out Vector256<sbyte> l, out Vector256<sbyte> h);
        lo = Fma.MultiplyAdd(d, Avx.ConvertToVector256Single(SignedLaneSum(l, q)), lo);
        hi = Fma.MultiplyAdd(d, Avx.ConvertToVector256Single(SignedLaneSum(h, q + 16)), hi);
    }

    /// <summary>Both lanes of <see cref="Iq4NlLanes"/> as one exact integer per row (for the odd last block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Iq4NlLaneSums(byte* p, Vector256<sbyte> table, byte* q)
    {
        Iq4NlLevels(p, table, out Vector256<sbyte> l, out Vector256<sbyte> h);
        return Avx2.Add(SignedLaneSum(l, q), SignedLaneSum(h, q + 16));
    }

    /// <summary>The levels of vector k of a group block: low nibbles (lane k of each row), high nibbles (lane 4 + k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Iq4NlLevels(byte* p, Vector256<sbyte> table, out Vector256<sbyte> lo, out Vector256<sbyte> hi)
    {
        Vector256<byte> v = Avx.LoadVector256(p), mask = Vector256.Create((byte)0x0F);
        lo = Avx2.Shuffle(table, Avx2.And(v, mask).AsSByte());
        hi = Avx2.Shuffle(table, Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask).AsSByte());
    }

    /// <summary>Each row's four signed levels times the token's four bytes at <paramref name="q"/> (sign trick), int32 per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SignedLaneSum(Vector256<sbyte> x, byte* q)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Sign(x, x).AsByte(), Avx2.Sign(Broadcast4(q), x)), Vector256.Create((short)1));
}
