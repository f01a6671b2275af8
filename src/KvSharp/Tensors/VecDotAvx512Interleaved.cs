using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// AVX-512F/BW group kernels for Q8_0, the nibble types, IQ4_NL and MXFP4 (<see cref="KernelPath.Avx512"/>; the K-quants' and F32's, by four
/// or eight tokens, are in the other parts of this class): two consecutive eight-row groups of
/// <see cref="InterleavedRows"/> (sixteen rows, one per int32 / float lane of a 512-bit vector) against one, four or
/// eight tokens. They read the same layout as <see cref="VecDotAvx2Interleaved"/> (each 512-bit weight vector is the
/// same 32 bytes of the two groups; in a Q4_0 copy that pairs its groups, <see cref="InterleavedRows.PairedGroups"/>,
/// those 64 bytes lie side by side), and per row and token they do exactly its arithmetic: the same exact block
/// integer, then acc = fma(dx * dy, sum, acc) once per block. So every output has the AVX2 kernels' bits, and a lone
/// last group of a tile can run on those.
/// </summary>
/// <remarks>
/// AVX-512BW has no <c>vpsignb</c>, and .NET 10 exposes no 512-bit VNNI. Q8_0 therefore keeps the sign trick with the
/// sign moved by a mask: |w| and the mask of negative weights are computed once per weight vector and shared by every
/// token; per token the activation bytes are negated where the mask is set, then vpmaddubsw, vpmaddwd. Offsetting the
/// weights to unsigned bytes instead (as the VNNI kernels do) would overflow vpmaddubsw's int16 pairs (2 x 255 x 127).
/// Q4_0's nibbles are unsigned already, so its kernels are the AVX2 ones at twice the width.
/// Why wider helps on CPUs that split 512-bit operations in two (Zen 4): half the instructions per product, 32 vector
/// registers, so eight tokens' int and float accumulators for sixteen rows stay in registers.
/// </remarks>
internal static unsafe partial class VecDotAvx512Interleaved
{
    /// <summary>
    /// The kernels for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q4_K, Q5_K, Q6_K or F32 (w, groupBytes, y, yStride, n, output, outStride):
    /// sixteen rows, the groups at w and w + groupBytes, by one, four or eight tokens (activation rows y + k * yStride):
    /// out[k * outStride + r]. A null kernel means that token count runs otherwise (MatMul: eight as two fours, the
    /// rest on the one-group kernels).
    /// </summary>
    public static void Kernels(GgmlType type, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> one,
        out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> eight)
        => Kernels(type, pairedGroups: false, out one, out four, out eight);

    /// <summary>
    /// <see cref="Kernels(GgmlType, out delegate*{byte*, nint, byte*, nint, int, float*, nint, void}, out delegate*{byte*, nint, byte*, nint, int, float*, nint, void}, out delegate*{byte*, nint, byte*, nint, int, float*, nint, void})"/>
    /// for a copy whose pairs of groups are one stream where <paramref name="pairedGroups"/> (<see cref="InterleavedRows.PairedGroups"/>).
    /// </summary>
    public static void Kernels(GgmlType type, bool pairedGroups, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> one,
        out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> eight)
    {
        if (pairedGroups && !InterleavedRows.CanPairGroups(type))
            throw new NotSupportedException($"VecDotAvx512Interleaved: no paired-group kernels for {type} (only Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and MXFP4)");
        if (type == GgmlType.Q8_0) OneFourEight<Q8>(out one, out four, out eight);
        else if (InterleavedRows.CanPairGroups(type))
        {
            if (pairedGroups) NibbleKernels<PairedGroups>(type, out one, out four, out eight);
            else NibbleKernels<PlainGroups>(type, out one, out four, out eight);
        }
        else if (type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K)
        {
            // Four tokens only: one token runs the one-group kernels (see VecDotAvx512Interleaved.Q4K.cs, .Q6K.cs).
            one = null;
            four = type switch { GgmlType.Q4_K => &Q4_KX4, GgmlType.Q5_K => &Q5_KX4, _ => &Q6_KX4 };
            eight = null;
        }
        else if (type == GgmlType.F32)
        {
            // Four or eight tokens: one token runs the AVX2 kernels (see VecDotAvx512Interleaved.F32.cs).
            one = null;
            four = &F32X4;
            eight = &F32X8;
        }
        else throw new NotSupportedException($"VecDotAvx512Interleaved: no kernels for {type} (only Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q4_K, Q5_K, Q6_K and F32)");
    }

    /// <summary>The nibble types' kernels (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4) over a copy laid out as <typeparamref name="L"/> says.</summary>
    private static void NibbleKernels<L>(GgmlType type, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> one,
        out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> eight)
        where L : IGroupLayout
    {
        switch (type)
        {
            case GgmlType.Q4_0: OneFourEight<Q4<L>>(out one, out four, out eight); break;
            case GgmlType.Q4_1: OneFourEight<Q41<L>>(out one, out four, out eight); break;
            case GgmlType.Q5_0: OneFourEight<Q5<L>>(out one, out four, out eight); break;
            case GgmlType.IQ4_NL: OneFourEight<Levels<Iq4NlLevels, L>>(out one, out four, out eight); break;
            case GgmlType.MXFP4: OneFourEight<Levels<Mxfp4Levels, L>>(out one, out four, out eight); break;
            default: OneFourEight<Q51<L>>(out one, out four, out eight); break;
        }
    }

    /// <summary>Block type <typeparamref name="T"/>'s kernels by one, four and eight tokens.</summary>
    private static void OneFourEight<T>(out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> one,
        out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, nint, byte*, nint, int, float*, nint, void> eight)
        where T : IBlock
    {
        one = &X1<T>;
        four = &X4<T>;
        eight = &X8<T>;
    }

    /// <summary>
    /// Where a group block's parts lie for the second group of a pair: groupBytes on (<see cref="PlainGroups"/>), or
    /// right after the first group's, every part at twice its offset in a group block (<see cref="PairedGroups"/>,
    /// <see cref="InterleavedRows.PairedGroups"/>).
    /// </summary>
    private interface IGroupLayout
    {
        static abstract bool Paired { get; }
    }

    private readonly struct PlainGroups : IGroupLayout
    {
        public static bool Paired => false;
    }

    private readonly struct PairedGroups : IGroupLayout
    {
        public static bool Paired => true;
    }

    /// <summary>Bytes of a Q8_0 activation block's extras (float scale, 8 x quant sum; <see cref="VecDotAvx2Interleaved.AppendExtras"/>).</summary>
    private const int Extras = 8;

    /// <summary>
    /// One weight type's block: how a 512-bit weight vector (32 bytes of each group) is prepared once for all tokens,
    /// how a token's bytes are multiplied into its accumulator, and how the accumulator becomes the exact block integer.
    /// </summary>
    private interface IBlock
    {
        /// <summary>Bytes of a group's block (eight rows' blocks, interleaved).</summary>
        static abstract int GroupBlockBytes { get; }

        /// <summary>32-byte weight vectors per group block.</summary>
        static abstract int Vectors { get; }

        /// <summary>How many pairs of groups ahead the one-token kernel requests its weights (<see cref="PrefetchPairAhead"/>).</summary>
        static abstract int OneTokenPairsAhead { get; }

        /// <summary>
        /// Whether the block has a min (Q4_1, Q5_1): its eight m follow the eight d, the activations are Q8_1 with d and s
        /// as floats in their extras, and acc = fma(m, s, acc) after each block (<see cref="Finish{T}"/>).
        /// </summary>
        static abstract bool HasMins { get; }

        /// <summary>
        /// Whether the pair's two group blocks are one stream (<see cref="InterleavedRows.PairedGroups"/>):
        /// <see cref="GroupBlockBytes"/> is then the pair's block, and groupBytes is not read.
        /// </summary>
        static virtual bool Paired => false;

        /// <summary>Whether the block's scales are E8M0 bytes (MXFP4: eight a group block) rather than halves.</summary>
        static virtual bool E8M0Scales => false;

        /// <summary>What the weight vectors of the group block at w share, read once per block (Q5: the fifth-bit plane).</summary>
        static abstract Vector512<byte> Shared(byte* w, nint groupBytes);

        /// <summary>
        /// Weight vector k of the group block at w (and of the next group's), prepared once for every token;
        /// <paramref name="shared"/> is the block's <see cref="Shared"/>.
        /// </summary>
        static abstract void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b);

        /// <summary>acc += the products of weight vector k (prepared as a, b) and the token's block quants at q.</summary>
        static abstract Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k);

        /// <summary>Two accumulators added in their own lane width (exact: a block's sums stay in range).</summary>
        static abstract Vector512<int> Add(Vector512<int> x, Vector512<int> y);

        /// <summary>The block's exact int32 dot per row from the summed steps (<paramref name="e"/>: the token's extras).</summary>
        static abstract Vector512<int> BlockSum(Vector512<int> acc, byte* e);
    }

    /// <summary>Q8_0: eight vectors of four quants per row; |w| and the negative-weight mask, int32 lanes.</summary>
    private readonly struct Q8 : IBlock
    {
        public static int GroupBlockBytes => 8 * Q8_0Bytes;
        public static int Vectors => 8;
        public static int OneTokenPairsAhead => 1;
        public static bool HasMins => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
        {
            Vector512<byte> v = Load2(w, groupBytes, 16 + 32 * k);
            a = Avx512BW.Abs(v.AsSByte());
            b = v;
        }

        /// <summary>ggml's sign trick: |w| x (y negated where w &lt; 0); vpmaddubsw pairs stay within int16 (2 x 128 x 127).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k)
        {
            // (y ^ m) - m with m = -1 where w < 0: y negated there, kept elsewhere (two instructions, like a blend).
            Vector512<sbyte> y = Broadcast4(q + 4 * k);
            Vector512<sbyte> signed = Vector512.ConditionalSelect(Vector512.LessThan(b.AsSByte(), Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - y, y);
            return acc + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(a, signed), Vector512.Create((short)1));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => acc;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => x + y;
    }

    /// <summary>
    /// Q4_0: four vectors of packed bytes (low nibbles: elements 4k.., high: 16 + 4k..); the unsigned nibbles times the
    /// activation bytes in int16 lanes (a block stays below 8 x 2 x 15 x 127 = 30480), widened once per block, minus
    /// 8 x the activation sum for the nibbles' offset of 8.
    /// </summary>
    private readonly struct Q4<L> : IBlock where L : IGroupLayout
    {
        // Inlined by request: as a plain property over L it stayed a call, once per block (the kernels ran 1.3x slower).
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (L.Paired ? 16 : 8) * Q4_0Bytes; }
        public static bool Paired { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => L.Paired; }
        public static int Vectors => 4;

        /// <summary>
        /// The pair after next (measured, not derived): in-process A/B over a `small` model's Q4_0 matrices (62 MB) on a
        /// shared 2-core Zen 4, huge pages, one contiguous share per thread, against the next pair: 1.02-1.13x on one
        /// thread (median of nine runs' medians 1.07x), 0.97-1.09x on two (1.03x; the host at load 6-9). Three pairs
        /// ahead no better; prefetcht0 instead of prefetcht1 0.53x. The kernel then reads at 0.81-0.91 of a load-only
        /// loop over the same bytes (0.77-0.87 before). Q8_0's one-token default is AVX2, so it keeps the next pair.
        /// </summary>
        public static int OneTokenPairsAhead => 2;
        public static bool HasMins => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
            => Nibbles(Load2<L>(w, groupBytes, 16 + 32 * k), out a, out b);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k) => NibbleStep(acc, a, b, q, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => Widen(acc) - Vector512.Create(*(int*)(e + 4));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => (x.AsInt16() + y.AsInt16()).AsInt32();
    }

    /// <summary>Q4_1: Q4_0's steps after the eight d and the eight m; no offset to take off (the min is m x s).</summary>
    private readonly struct Q41<L> : IBlock where L : IGroupLayout
    {
        // Inlined by request: as a plain property over L it stayed a call, once per block (the kernels ran 1.3x slower).
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (L.Paired ? 16 : 8) * Q4_1Bytes; }
        public static bool Paired { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => L.Paired; }
        public static int Vectors => 4;

        /// <summary>Q4_0's.</summary>
        public static int OneTokenPairsAhead => 2;
        public static bool HasMins => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
            => Nibbles(Load2<L>(w, groupBytes, 32 + 32 * k), out a, out b);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k) => NibbleStep(acc, a, b, q, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => Widen(acc);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => (x.AsInt16() + y.AsInt16()).AsInt32();
    }

    /// <summary>
    /// acc += the unsigned nibbles times the token's bytes in int16 lanes (Q4_0, Q4_1: a block stays below
    /// 8 x 2 x 15 x 127 = 30480).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> NibbleStep(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k)
        => (acc.AsInt16() + Avx512BW.MultiplyAddAdjacent(a, Broadcast4(q + 4 * k)) + Avx512BW.MultiplyAddAdjacent(b, Broadcast4(q + 16 + 4 * k))).AsInt32();

    /// <summary>int16 lanes widened to int32 (adjacent pairs added).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Widen(Vector512<int> acc) => Avx512BW.MultiplyAddAdjacent(acc.AsInt16(), Vector512.Create((short)1));

    /// <summary>
    /// Q5_0: Q4_0's quant vectors after the fifth-bit plane (<see cref="InterleavedRows.FifthBitPlane"/>), the fifth bits
    /// or'ed in as the AVX2 kernels do (quants 0..31). A step's two products stay within int16 (2 x 2 x 31 x 127) and are
    /// widened at once, as in the AVX2 kernel; the block loses 16 x the activation sum (twice the extras' 8 x).
    /// </summary>
    private readonly struct Q5<L> : IBlock where L : IGroupLayout
    {
        // Inlined by request: as a plain property over L it stayed a call, once per block (the kernels ran 1.3x slower).
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (L.Paired ? 16 : 8) * Q5_0Bytes; }
        public static bool Paired { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => L.Paired; }
        public static int Vectors => 4;

        /// <summary>Q4_0's.</summary>
        public static int OneTokenPairsAhead => 2;
        public static bool HasMins => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => Load2<L>(w, groupBytes, 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
            => FiveBitQuants<L>(w, groupBytes, 16, k, shared, out a, out b);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k) => FiveBitStep(acc, a, b, q, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => acc - Vector512.Create(*(int*)(e + 4) << 1);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => x + y;
    }

    /// <summary>Q5_1: Q5_0's steps with the plane after the eight d and the eight m; no offset (the min is m x s).</summary>
    private readonly struct Q51<L> : IBlock where L : IGroupLayout
    {
        // Inlined by request: as a plain property over L it stayed a call, once per block (the kernels ran 1.3x slower).
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (L.Paired ? 16 : 8) * Q5_1Bytes; }
        public static bool Paired { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => L.Paired; }
        public static int Vectors => 4;

        /// <summary>Q4_0's.</summary>
        public static int OneTokenPairsAhead => 2;
        public static bool HasMins => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => Load2<L>(w, groupBytes, 32);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
            => FiveBitQuants<L>(w, groupBytes, 32, k, shared, out a, out b);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k) => FiveBitStep(acc, a, b, q, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => acc;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => x + y;
    }

    /// <summary>
    /// Quant vector k of a Q5 group block whose fifth-bit plane is at <paramref name="plane"/> (the quant vectors follow
    /// it) and was read as <paramref name="planeBits"/> (the block's <see cref="IBlock.Shared"/>: read once, not once per
    /// vector; the JIT did not hoist it out of the eight-token kernel's loop): the nibbles with their fifth bits or'ed
    /// in, as <see cref="VecDotAvx2Interleaved"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiveBitQuants<L>(byte* w, nint groupBytes, int plane, int k, Vector512<byte> planeBits, out Vector512<byte> a, out Vector512<byte> b)
        where L : IGroupLayout
    {
        Nibbles(Load2<L>(w, groupBytes, plane + 32 + 32 * k), out a, out b);
        Vector512<ushort> bits = planeBits.AsUInt16();
        Vector512<byte> fifth = Vector512.Create((byte)0x10);
        a |= Vector512.ShiftRightLogical(bits, k).AsByte() & fifth;
        b |= Vector512.ShiftLeft(bits, 4 - k).AsByte() & fifth;
    }

    /// <summary>acc += a step's two products, added in int16 (at most 2 x 2 x 31 x 127) and widened at once (Q5_0, Q5_1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> FiveBitStep(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k)
        => acc + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(a, Broadcast4(q + 4 * k)) + Avx512BW.MultiplyAddAdjacent(b, Broadcast4(q + 16 + 4 * k)),
            Vector512.Create((short)1));

    /// <summary>The low and high nibbles of a weight vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles(Vector512<byte> v, out Vector512<byte> lo, out Vector512<byte> hi)
    {
        Vector512<byte> mask = Vector512.Create((byte)0x0F);
        lo = v & mask;
        hi = Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
    }

    /// <summary>
    /// IQ4_NL and MXFP4 (<typeparamref name="K"/>): Q4_0's group layout but for the scales (MXFP4: eight E8M0 bytes a
    /// group block), each nibble looked up in the type's level table (vpshufb works within 128-bit lanes, so
    /// the 16-entry table sits in all four); the levels are signed bytes, so the products are Q8_0's: low-nibble
    /// levels against the token's elements 4k.., high ones against 16 + 4k.., int32 lanes. |levels| and their signs are
    /// the same for every token of a pass; the JIT computes them once per weight vector, as Q8_0's sign mask.
    /// Against the AVX2 group kernels on the same interleaved matrix (in-process A/B through MatMul, one thread, 61
    /// rounds, tiered compilation off, shared 2-core Zen 4; `interleaved 61 IQ4_NL RxC T paths`): 64 tokens 1.30x
    /// (2048 x 768) and 1.44x (768 x 2048), one token 1.23x and 1.69x, so IQ4_NL decode runs here too.
    /// (A Q4_K pair kernel built the same way, eight tokens over sixteen rows, ran 0.93-1.08x its AVX2 kernel: Q4_K's
    /// nibbles need no sign step, so a 512-bit instruction did the work of two 256-bit ones and no more; not kept.)
    /// </summary>
    private readonly struct Levels<K, L> : IBlock where K : INibbleLevels where L : IGroupLayout
    {
        public static int GroupBlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (L.Paired ? 16 : 8) * K.BlockBytes; }
        public static bool Paired { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => L.Paired; }
        public static bool E8M0Scales { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => K.E8M0; }
        public static int Vectors => 4;

        /// <summary>Q4_0's (the same bytes per block).</summary>
        public static int OneTokenPairsAhead => 2;
        public static bool HasMins => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Shared(byte* w, nint groupBytes) => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(byte* w, nint groupBytes, int k, Vector512<byte> shared, out Vector512<byte> a, out Vector512<byte> b)
        {
            Vector512<byte> v = Load2<L>(w, groupBytes, 8 * NibbleLevelScales.ScaleBytes<K>() + 32 * k);
            Vector512<sbyte> table = Vector512.Create(K.Table, K.Table);
            Vector512<byte> mask = Vector512.Create((byte)0x0F);
            a = Avx512BW.Shuffle(table, (v & mask).AsSByte()).AsByte();
            b = Avx512BW.Shuffle(table, (Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).AsSByte()).AsByte();
        }

        /// <summary>Q8's step twice, written out (a helper for it left calls in the eight-token kernel: see Q8.Step).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Step(Vector512<int> acc, Vector512<byte> a, Vector512<byte> b, byte* q, int k)
        {
            Vector512<sbyte> la = a.AsSByte(), hb = b.AsSByte(), yl = Broadcast4(q + 4 * k), yh = Broadcast4(q + 16 + 4 * k);
            Vector512<sbyte> sl = Vector512.ConditionalSelect(Vector512.LessThan(la, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - yl, yl);
            Vector512<sbyte> sh = Vector512.ConditionalSelect(Vector512.LessThan(hb, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - yh, yh);
            Vector512<short> ones = Vector512.Create((short)1);
            return acc + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(la).AsByte(), sl), ones)
                + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(hb).AsByte(), sh), ones);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> BlockSum(Vector512<int> acc, byte* e) => acc;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Add(Vector512<int> x, Vector512<int> y) => x + y;
    }

    /// <summary>Four bytes of the activation block in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Broadcast4(byte* q) => Vector512.Create(*(int*)q).AsSByte();

    /// <summary>32 bytes at offset <paramref name="offset"/> of the group block at p, and of the next group's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Load2(byte* p, nint groupBytes, int offset)
        => Join(Avx.LoadVector256(p + offset), Avx.LoadVector256(p + groupBytes + offset));

    /// <summary>
    /// <see cref="Load2(byte*, nint, int)"/> in a copy laid out as <typeparamref name="L"/> says: where the pair is one
    /// stream, the two groups' 32 bytes lie side by side at twice the offset, one load.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Load2<L>(byte* p, nint groupBytes, int offset) where L : IGroupLayout
        => L.Paired ? Vector512.Load(p + 2 * offset) : Load2(p, groupBytes, offset);

    /// <summary>
    /// lo in the low half, hi in the high: one vinserti64x4. (Vector512.Create(lo, hi) compiles to two inserts into the
    /// previous iteration's register, a dependency that made the decode kernels twice as slow.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Join(Vector256<byte> lo, Vector256<byte> hi) => Avx512F.InsertVector256(lo.ToVector512Unsafe(), hi, 1);

    /// <summary>
    /// The sixteen rows' block scales (the halves at the start of each group's block), widened in one 512-bit pass with
    /// <see cref="VecDotAvx2.HalfToSingle(Vector256{int})"/>'s arithmetic, so the same floats. These kernels are bound by
    /// how many vector instructions they issue (512-bit ones take a 256-bit pipe twice on Zen 4), and two 256-bit
    /// conversions and a join were about 6% of the eight-token Q8_0 kernel's instructions: one pass instead ran it
    /// 1.02x as fast (in-process A/B through MatMul, 16 tokens, one thread, 150 rounds, shared 2-core Zen 4:
    /// 1.019-1.024x over four runs on the `small` shape's 2048 x 768 and 768 x 2048; see docs/benchmarks.md). The
    /// one-token kernels share it: 1.02x on 2048 x 768 for Q8_0 and Q4_0 from cache (100 rounds), none slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales(byte* p, nint groupBytes)
        => HalvesToSingles(Avx2.InsertVector128(Sse2.LoadVector128((short*)p).ToVector256Unsafe(), Sse2.LoadVector128((short*)(p + groupBytes)), 1));

    /// <summary>
    /// The sixteen rows' block scales of the block at p: <see cref="Scales(byte*, nint)"/>, or one load where the pair is
    /// one stream; E8M0 bytes (MXFP4) widened as <see cref="NibbleLevelScales.E8M0ToSingle(Vector512{int})"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales<T>(byte* p, nint groupBytes) where T : IBlock
        => T.E8M0Scales ? NibbleLevelScales.E8M0ToSingle(Avx512F.ConvertToVector512Int32(T.Paired ? Sse2.LoadVector128(p) : Vector128.Create(*(ulong*)p, *(ulong*)(p + groupBytes)).AsByte()))
            : Halves<T>(p, groupBytes, 0);

    /// <summary>
    /// The sixteen rows' halves at <paramref name="offset"/> of the group blocks at p and p + groupBytes, or, where the
    /// pair is one stream, side by side at twice the offset.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves<T>(byte* p, nint groupBytes, int offset) where T : IBlock
        => T.Paired ? HalvesToSingles(Avx.LoadVector256((short*)(p + 2 * offset))) : Scales(p + offset, groupBytes);

    /// <summary>Sixteen halves widened exactly to floats (<see cref="VecDotAvx2.HalfToSingle(Vector256{int})"/>'s arithmetic).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> HalvesToSingles(Vector256<short> halves)
    {
        Vector512<int> h = Avx512F.ConvertToVector512Int32(halves);
        Vector512<int> em = h & Vector512.Create(0x7fff);
        Vector512<int> f = (Avx512F.ShiftLeftLogical(em, 13).AsSingle() * Vector512.Create(5.192297e33f /* 2^112 */)).AsInt32();
        Vector512<int> infNan = Vector512.GreaterThan(em, Vector512.Create(0x7bff)) & Vector512.Create(0x7f800000);
        return (f | infNan | (h & Vector512.Create(int.MinValue))).AsSingle();
    }

    /// <summary>
    /// Asks for block <paramref name="w"/>'s counterpart <paramref name="pairs"/> pairs of groups on to be brought into
    /// L2: the products over several tokens are bound by arithmetic, and the hardware prefetcher alone left them
    /// waiting on weights streamed from memory (two streams at once defeat it; without requests the one-token Q4_0
    /// kernel ran at 0.38x).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchPairAhead<T>(byte* w, nint groupBytes, int pairs) where T : IBlock
    {
        if (!T.Paired)
        {
            PrefetchPairAhead(w, groupBytes, pairs, T.GroupBlockBytes);
            return;
        }
        // One stream: the pair's block, a line at a time (the blocks are not line-aligned, but consecutive blocks' requests
        // are never more than a line apart, so every line is asked for).
        byte* ahead = w + 2 * pairs * groupBytes;
        for (int o = 0; o < T.GroupBlockBytes; o += 64) Sse.Prefetch1(ahead + o);
    }

    /// <summary><see cref="PrefetchPairAhead{T}"/> for a group block of <paramref name="blockBytes"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchPairAhead(byte* w, nint groupBytes, int pairs, int blockBytes)
    {
        byte* ahead = w + 2 * pairs * groupBytes;
        for (int o = 0; o < blockBytes; o += 64)
        {
            Sse.Prefetch1(ahead + o);
            Sse.Prefetch1(ahead + groupBytes + o);
        }
    }

    /// <summary>
    /// <see cref="PrefetchPairAhead(byte*, nint, int, int)"/> for the K-quants' super-blocks (Q4_K and Q5_K pairs are 36
    /// and 44 lines, Q6_K's 54), four lines of each group per pass: with one line per pass the JIT kept the loop, and
    /// its counting cost as many instructions as the requests, a quarter of the four-token Q4_K kernel's per
    /// super-block. In its own method so the short loop the one-block kernels inline stays as it was (folding both
    /// into one made the eight-token Q4_0 kernel 0.86-0.90x as fast).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchSuperBlockPairAhead(byte* w, nint groupBytes, int blockBytes)
    {
        byte* ahead = w + 2 * groupBytes, next = ahead + groupBytes;
        int o = 0;
        for (; o + 256 <= blockBytes; o += 256)
        {
            Sse.Prefetch1(ahead + o);
            Sse.Prefetch1(ahead + o + 64);
            Sse.Prefetch1(ahead + o + 128);
            Sse.Prefetch1(ahead + o + 192);
            Sse.Prefetch1(next + o);
            Sse.Prefetch1(next + o + 64);
            Sse.Prefetch1(next + o + 128);
            Sse.Prefetch1(next + o + 192);
        }
        for (; o < blockBytes; o += 64)
        {
            Sse.Prefetch1(ahead + o);
            Sse.Prefetch1(next + o);
        }
    }

    /// <summary>acc = fma(dx * dy, float(sum), acc) per lane (<see cref="VecDotAvx2Interleaved"/>'s Finish).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<float> acc, Vector512<float> dx, byte* e, Vector512<int> sum)
        => Avx512F.FusedMultiplyAdd(Avx512F.Multiply(dx, Vector512.Create(*(float*)e)), Avx512F.ConvertToVector512Single(sum), acc);

    /// <summary>
    /// <see cref="Finish"/> of the block's exact sum; with mins, then acc = fma(m, s, acc) with the token's s (the AVX2
    /// kernels' FinishWithMin, lane by lane).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish<T>(Vector512<float> acc, Vector512<float> dx, Vector512<float> mx, byte* e, Vector512<int> acc32) where T : IBlock
    {
        acc = Finish(acc, dx, e, T.BlockSum(acc32, e));
        return T.HasMins ? Avx512F.FusedMultiplyAdd(mx, Vector512.Create(*(float*)(e + 4)), acc) : acc;
    }

    /// <summary>Bytes of a token's activation block: Q8_1 for the types with mins, else Q8_0.</summary>
    /// <remarks>
    /// The kernels read it, and <see cref="ActivationQuants{T}"/>, once per call into locals: the eight-token kernel is past
    /// the JIT's inlining budget, and called once per block they cost it its registers (1.6x slower).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActivationBytes<T>() where T : IBlock => T.HasMins ? Q8_1Bytes : Q8_0Bytes;

    /// <summary>Offset of the 32 quants in a token's activation block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActivationQuants<T>() where T : IBlock => T.HasMins ? 4 : 2;

    /// <summary>The sixteen rows' m (after their d) for a type with mins; else nothing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mins<T>(byte* w, nint groupBytes) where T : IBlock => T.HasMins ? Halves<T>(w, groupBytes, 16) : default;

    private static void X1<T>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride) where T : IBlock
    {
        int nb = n / QK, A = ActivationBytes<T>(), quants = ActivationQuants<T>();
        byte* e = y + nb * A;
        Vector512<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += T.GroupBlockBytes, y += A, e += Extras)
        {
            // Two partial sums shorten the dependency chain; integer adds are exact (Q4_0: within int16, see Q4).
            PrefetchPairAhead<T>(w, groupBytes, T.OneTokenPairsAhead);
            Vector512<int> i0 = default, i1 = default;
            Vector512<byte> shared = T.Shared(w, groupBytes);
            for (int k = 0; k < T.Vectors; k += 2)
            {
                T.Prepare(w, groupBytes, k, shared, out var a0, out var b0);
                T.Prepare(w, groupBytes, k + 1, shared, out var a1, out var b1);
                i0 = T.Step(i0, a0, b0, y + quants, k);
                i1 = T.Step(i1, a1, b1, y + quants, k + 1);
            }
            acc = Finish<T>(acc, Scales<T>(w, groupBytes), Mins<T>(w, groupBytes), e, T.Add(i0, i1));
        }
        Vector512.Store(acc, output);
    }

    private static void X4<T>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride) where T : IBlock
    {
        int nb = n / QK, A = ActivationBytes<T>(), quants = ActivationQuants<T>();
        byte* e = y + nb * A;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += T.GroupBlockBytes, y += A, e += Extras)
        {
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            PrefetchPairAhead<T>(w, groupBytes, 1);
            byte* q = y + quants;
            Vector512<byte> shared = T.Shared(w, groupBytes);
            for (int k = 0; k < T.Vectors; k++)
            {
                T.Prepare(w, groupBytes, k, shared, out var pa, out var pb);
                i0 = T.Step(i0, pa, pb, q, k);
                i1 = T.Step(i1, pa, pb, q + s1, k);
                i2 = T.Step(i2, pa, pb, q + s2, k);
                i3 = T.Step(i3, pa, pb, q + s3, k);
            }
            Finish4<T>(ref a0, ref a1, ref a2, ref a3, Scales<T>(w, groupBytes), Mins<T>(w, groupBytes), e, s1, i0, i1, i2, i3);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    private static void X8<T>(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride) where T : IBlock
    {
        int nb = n / QK, A = ActivationBytes<T>(), quants = ActivationQuants<T>();
        byte* e = y + nb * A;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride, s4 = 4 * yStride;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int ib = 0; ib < nb; ib++, w += T.GroupBlockBytes, y += A, e += Extras)
        {
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default, i4 = default, i5 = default, i6 = default, i7 = default;
            PrefetchPairAhead<T>(w, groupBytes, 1);
            byte* q = y + quants, q4 = q + s4;
            Vector512<byte> shared = T.Shared(w, groupBytes);
            for (int k = 0; k < T.Vectors; k++)
            {
                T.Prepare(w, groupBytes, k, shared, out var pa, out var pb);
                i0 = T.Step(i0, pa, pb, q, k);
                i1 = T.Step(i1, pa, pb, q + s1, k);
                i2 = T.Step(i2, pa, pb, q + s2, k);
                i3 = T.Step(i3, pa, pb, q + s3, k);
                i4 = T.Step(i4, pa, pb, q4, k);
                i5 = T.Step(i5, pa, pb, q4 + s1, k);
                i6 = T.Step(i6, pa, pb, q4 + s2, k);
                i7 = T.Step(i7, pa, pb, q4 + s3, k);
            }
            Vector512<float> dx = Scales<T>(w, groupBytes), mx = Mins<T>(w, groupBytes);
            Finish4<T>(ref a0, ref a1, ref a2, ref a3, dx, mx, e, s1, i0, i1, i2, i3);
            Finish4<T>(ref a4, ref a5, ref a6, ref a7, dx, mx, e + s4, s1, i4, i5, i6, i7);
        }
        Store4(output, outStride, a0, a1, a2, a3);
        Store4(output + 4 * outStride, outStride, a4, a5, a6, a7);
    }

    /// <summary><see cref="Finish{T}"/> for four tokens whose extras are <paramref name="stride"/> apart from e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish4<T>(ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3,
        Vector512<float> dx, Vector512<float> mx, byte* e, nint stride, Vector512<int> i0, Vector512<int> i1, Vector512<int> i2, Vector512<int> i3) where T : IBlock
    {
        a0 = Finish<T>(a0, dx, mx, e, i0);
        a1 = Finish<T>(a1, dx, mx, e + stride, i1);
        a2 = Finish<T>(a2, dx, mx, e + 2 * stride, i2);
        a3 = Finish<T>(a3, dx, mx, e + 3 * stride, i3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* output, nint stride, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        Vector512.Store(a0, output);
        Vector512.Store(a1, output + stride);
        Vector512.Store(a2, output + 2 * stride);
        Vector512.Store(a3, output + 3 * stride);
    }
}
