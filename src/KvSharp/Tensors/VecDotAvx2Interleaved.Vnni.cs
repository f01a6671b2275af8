using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// The signed-weight group kernels (Q8_0; IQ4_NL and MXFP4 through <see cref="LevelKernels"/>) on AVX-VNNI (<c>vpdpbusd</c>: unsigned bytes x signed bytes, four
/// products summed into each int32 lane in one instruction), used on <see cref="KernelPath.Avx2Vnni"/>
/// (<see cref="KernelPaths"/>); and Q4_K's, Q5_K's and Q6_K's one-token kernels, whose steps add into int32 lanes and
/// whose scales multiply with vpmulld (their four-token products stay on vpmaddubsw: see <see cref="QuantKx4"/>). The
/// nibble types' VNNI kernels are <see cref="NibbleKernels"/>.
/// </summary>
internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary><see cref="Q8_0x1"/> on VNNI.</summary>
    public static void Q8_0x1Vnni(byte* w, byte* y, int n, float* output) => SignedX1<Q8Weights, VnniOffset>(w, y, n, output);

    /// <summary><see cref="Q8_0x4"/> on VNNI.</summary>
    public static void Q8_0x4Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX4<Q8Weights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Q8_0x8"/> on VNNI.</summary>
    public static void Q8_0x8Vnni(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX8<Q8Weights, VnniOffset>(w, y, yStride, n, output, outStride);

    /// <summary><see cref="Q4_Kx1"/> on VNNI.</summary>
    public static void Q4_Kx1Vnni(byte* w, byte* y, int n, float* output) => QuantK4x1<Dpbusd>(w, y, n, output);

    /// <summary><see cref="Q5_Kx1"/> on VNNI.</summary>
    public static void Q5_Kx1Vnni(byte* w, byte* y, int n, float* output) => QuantK5x1<Dpbusd>(w, y, n, output);

    /// <summary>
    /// The sign trick spends three multiply-pipe instructions per 32 multiply-adds of a row and token (vpsignb,
    /// vpmaddubsw, vpmaddwd). This is one: each weight vector is offset to unsigned once (w + 128, an XOR with 0x80,
    /// shared by all tokens) and multiplied against the token's signed bytes as they are; the offset's contribution,
    /// 128 x the block's activation sum, is taken off once per block (the extras hold 8 x that sum). The integers
    /// are exact (at most 32 x 255 x 128 in a lane), so every block sum, and with the same float finish every output,
    /// has the sign trick's bits.
    /// </summary>
    private readonly struct VnniOffset : IQ8Multiply
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Prepare(Vector256<sbyte> w) => Avx2.Xor(w.AsByte(), Vector256.Create((byte)0x80));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Step(Vector256<int> sum, Vector256<byte> prepared, Vector256<sbyte> w, byte* y)
            => AvxVnni.MultiplyWideningAndAdd(sum, prepared, Broadcast4(y));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockSum(Vector256<int> sum, byte* e) => Avx2.Subtract(sum, Vector256.Create(*(int*)(e + 4) << 4));
    }

    /// <summary>
    /// <see cref="Q6_Kx1"/> on VNNI: each group's words go straight into int32 lanes (vpdpbusd, the unsigned quants against
    /// the token's signed bytes), two word pairs at a time, which are one sub-block's sixteen elements, so the sub-block
    /// is scaled once (vpmulld) where the AVX2 kernel widens and scales every word pair (two vpmaddubsw, an add and a
    /// vpmaddwd per group and pair against four vpdpbusd and a vpmulld per group and two pairs). The integers are exact
    /// (a sub-block's sum is at most 16 x 63 x 128 before its scale), so every super-block's sum, and with the same
    /// offset term and float step every output, has the AVX2 kernel's bits.
    /// </summary>
    public static void Q6_Kx1Vnni(byte* w, byte* y, int n, float* output)
    {
        int nb = n / QK_K;
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += K6Block, y += Q8_KBytes)
        {
            Vector256<int> isum = Avx2.Add(Avx2.Add(SubBlocksK6(w, y, 0), SubBlocksK6(w, y, 2)), Avx2.Add(SubBlocksK6(w, y, 4), SubBlocksK6(w, y, 6)));
            acc = FinishSuperBlockK6(acc, w, y, isum);
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Word pairs <paramref name="hs"/> and hs + 1 (hs even: word positions 4j..4j + 3 of a half, one sub-block of each of
    /// the four groups) of a Q6_K group's super-block times one token, each group's sum scaled by its sub-block's scale:
    /// int32 lanes, the offset of 32 not yet subtracted (<see cref="WordPairK6"/>'s sum for both pairs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SubBlocksK6(byte* w, byte* y, int hs)
    {
        int h = hs >> 2, s = 2 * (hs & 3), k = 8 * h + (s >> 2); // k: group 0's sub-block; group g's is k + 2g
        byte* p = w + K6Quants + 192 * hs, q = y + Q8_K_Qs + 128 * h + 4 * s;
        QuantsK6(p, out Vector256<byte> x0, out Vector256<byte> x1, out Vector256<byte> x2, out Vector256<byte> x3);
        QuantsK6(p + 32, out Vector256<byte> z0, out Vector256<byte> z1, out Vector256<byte> z2, out Vector256<byte> z3);
        Vector256<int> g0 = Dot2(default, x0, z0, q), g1 = Dot2(default, x1, z1, q + 32), g2 = Dot2(default, x2, z2, q + 64), g3 = Dot2(default, x3, z3, q + 96);
        QuantsK6(p + 192, out x0, out x1, out x2, out x3);
        QuantsK6(p + 224, out z0, out z1, out z2, out z3);
        g0 = Dot2(g0, x0, z0, q + 8);
        g1 = Dot2(g1, x1, z1, q + 40);
        g2 = Dot2(g2, x2, z2, q + 72);
        g3 = Dot2(g3, x3, z3, q + 104);
        return Avx2.Add(Avx2.Add(Avx2.MultiplyLow(g0, ScaleK6Int32(w, k)), Avx2.MultiplyLow(g1, ScaleK6Int32(w, k + 2))),
            Avx2.Add(Avx2.MultiplyLow(g2, ScaleK6Int32(w, k + 4)), Avx2.MultiplyLow(g3, ScaleK6Int32(w, k + 6))));
    }

    /// <summary>sum += two quant words (elements at q and q + 4) times the token's bytes there, into int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot2(Vector256<int> sum, Vector256<byte> a, Vector256<byte> b, byte* q)
        => AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(sum, a, Broadcast4(q)), b, Broadcast4(q + 4));

    /// <summary>The eight rows' signed scale of sub-block <paramref name="k"/> (0..15) as each lane's int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> ScaleK6Int32(byte* w, int k)
    {
        // Byte k & 3 of each lane into the lane's top byte (pshufb zeroes the bytes whose control has bit 7 set), then
        // an arithmetic shift sign-extends it.
        Vector256<byte> control = (Vector256.Create(0x00808080u | (uint)(k & 3) << 24) + (LaneBytes << 24)).AsByte();
        return Avx2.ShiftRightArithmetic(Avx2.Shuffle(Avx.LoadVector256(w + K6Scales + 32 * (k >> 2)), control).AsInt32(), 24);
    }
}
