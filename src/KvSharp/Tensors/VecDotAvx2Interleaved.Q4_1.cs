using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary>Offsets in a Q4_1 group's block (see <see cref="InterleavedRows"/>): the eight m, the quants, the next block.</summary>
    private const int Q41Mins = 16, Q41Qs = 32, Q41Block = 8 * Q4_1Bytes;

    /// <summary>
    /// Eight interleaved Q4_1 rows x one token, with <see cref="VecDotAvx2.Q4_1"/>'s bits per row: that kernel keeps
    /// ggml's eight float lanes per row (lane l: elements 4l..4l+3 of every block, one FMA by dx·dy per block) and sums
    /// the min term m·s apart with one FMA per block, added after the lanes are reduced. Here vector l holds lane l of
    /// the eight rows and one vector the eight rows' min sums, so the float operations per row are the same and in the
    /// same order, while the nibbles, scales and min terms of eight rows go through each instruction together (the
    /// single-row kernel also waits on its scalar min-term FMA chain every block). Through MatMul on one thread,
    /// in-process A/B against the plain matrix, median of 21-41 alternated rounds: one token 4.4-5.8x over 2048x2048,
    /// 768x2048, 2048x768 (bimodal rounds, quartiles down to 1.9x), 2.8x over 8192x4096 (from L3 and memory);
    /// four and eight tokens (<see cref="Q4_1x4"/> against <see cref="VecDotAvx2Multi.Q4_1x4"/>) 1.1-2.4x.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Q4_1x1(byte* w, byte* y, int n, float* output)
    {
        int nb = n / QK;
        Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default, l4 = default, l5 = default, l6 = default, l7 = default;
        Vector256<float> summs = default;
        for (int ib = 0; ib < nb; ib++, w += Q41Block, y += Q8_1Bytes)
        {
            summs = Fma.MultiplyAdd(VecDotAvx2.HalfToSingle((ushort*)(w + Q41Mins)), Vector256.Create(F16(y + 2)), summs);
            Vector256<float> d = Avx.Multiply(VecDotAvx2.HalfToSingle((ushort*)w), Vector256.Create(F16(y)));
            Q4_1Lanes(w + Q41Qs, d, y + 4, ref l0, ref l4);
            Q4_1Lanes(w + Q41Qs + 32, d, y + 8, ref l1, ref l5);
            Q4_1Lanes(w + Q41Qs + 64, d, y + 12, ref l2, ref l6);
            Q4_1Lanes(w + Q41Qs + 96, d, y + 16, ref l3, ref l7);
        }
        Avx.Store(output, Avx.Add(HSum8Lanes(l0, l1, l2, l3, l4, l5, l6, l7), summs));
    }

    /// <summary>Eight interleaved Q4_1 rows x four tokens: <see cref="Q4_1x1"/> per token (why: see <see cref="Iq4Nlx4"/>).</summary>
    public static void Q4_1x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => TokenByToken(&Q4_1x1, w, y, yStride, n, output, outStride);

    /// <summary>
    /// Vector k of a group block's quants (at <paramref name="p"/>) times a token's elements 4k..4k+3 (at
    /// <paramref name="q"/>) and 16+4k..: lane k (low nibbles) and lane 4+k (high nibbles) of the eight rows, each
    /// added with one FMA by d (unsigned nibbles times signed bytes: ggml's mul_sum_us8_pairs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_1Lanes(byte* p, Vector256<float> d, byte* q, ref Vector256<float> lo, ref Vector256<float> hi)
    {
        Vector256<byte> v = Avx.LoadVector256(p), mask = Vector256.Create((byte)0x0F);
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> sl = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.And(v, mask), Broadcast4(q)), ones);
        Vector256<int> sh = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask), Broadcast4(q + 16)), ones);
        lo = Fma.MultiplyAdd(d, Avx.ConvertToVector256Single(sl), lo);
        hi = Fma.MultiplyAdd(d, Avx.ConvertToVector256Single(sh), hi);
    }

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
}
