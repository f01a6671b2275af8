using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// AVX2 kernels over <see cref="InterleavedRows"/>: eight weight rows (one per lane) against one or four tokens.
/// Per row and token the arithmetic is the block-sequential order of <see cref="VecDotScalar.Q8_0"/> /
/// <see cref="VecDotScalar.Q4_0"/> / <see cref="VecDotScalar.Iq4Nl"/> / <see cref="VecDotScalar.Q4_K"/> (and Q5_K) / <see cref="VecDotScalar.Q6_K"/>:
/// each block's exact integer dot, then acc = fma(dx * dy, sum, acc) (Q4_K, Q5_K: and the min term), so every output
/// is bit-identical to the single-row kernels and to any other grouping of tokens.
/// </summary>
/// <remarks>
/// Why this is faster than one row at a time: ggml's kernels spend, per 32 multiply-adds of one row and token, a
/// vpmaddubsw, a vpmaddwd, a conversion, a scale product and an FMA. Here a lane is a row, so a block's integer
/// partial sums stay in int32 lanes (Q8_0) or even int16 lanes (Q4_0, K-quant sub-blocks) across the block, and the
/// conversion, scale product and FMA are paid once per block (K-quants: one vpmaddwd per sub-block, the float work
/// once per super-block) for eight rows; nor is there a horizontal sum per output.
/// A Q8_0 activation row is followed by <see cref="Extras"/> (the block scale as a float and 8 x the sum of its
/// quants), written once per row by <see cref="AppendExtras"/>, a Q8_1 row by its d and s as floats
/// (<see cref="AppendExtrasQ8_1"/>); the K-quants read Q8_K's own scale and sums.
/// </remarks>
internal static unsafe partial class VecDotAvx2Interleaved
{
    /// <summary>Extra bytes after a Q8_0 activation row of <paramref name="blocks"/> blocks.</summary>
    public static int ExtraBytes(int blocks) => blocks * Extras;

    private const int Extras = 8;

    /// <summary>
    /// Writes each block's d and s (d·Σq; ggml keeps both as halves) as floats after the Q8_1 row at
    /// <paramref name="row"/>, so the Q4_1 group kernels read two floats per block and token instead of converting two
    /// halves there (which also kept their eight-token kernel within the JIT's inlining budget).
    /// </summary>
    public static void AppendExtrasQ8_1(byte* row, int blocks)
    {
        byte* e = row + blocks * Q8_1Bytes;
        for (int b = 0; b < blocks; b++, e += Extras)
        {
            *(float*)e = F16(row + b * Q8_1Bytes);
            *(float*)(e + 4) = F16(row + b * Q8_1Bytes + 2);
        }
    }

    /// <summary>Writes each block's scale (float) and 8 x its quant sum (int) after the Q8_0 row at <paramref name="row"/>.</summary>
    public static void AppendExtras(byte* row, int blocks)
    {
        byte* e = row + blocks * Q8_0Bytes;
        for (int b = 0; b < blocks; b++, e += Extras)
        {
            sbyte* q = (sbyte*)(row + b * Q8_0Bytes + 2);
            int sum = 0;
            for (int j = 0; j < QK; j++) sum += q[j];
            *(float*)e = F16(row + b * Q8_0Bytes);
            *(int*)(e + 4) = 8 * sum;
        }
    }

    /// <summary>Four bytes of the activation block (elements 4i..4i+3 from <paramref name="q"/>) in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast4(byte* q) => Vector256.Create(*(int*)q).AsSByte();

    /// <summary>
    /// How a Q8_0 group kernel multiplies a weight vector (four bytes of each of eight rows) by a token's four bytes:
    /// <see cref="SignTrick"/> on AVX2, <see cref="VnniOffset"/> where the CPU has AVX-VNNI. The kernels are generic
    /// over it, so each is compiled once per way with no call in the loop.
    /// </summary>
    private interface IQ8Multiply
    {
        /// <summary>The weight vector as <see cref="Step"/> wants it; computed once and shared by every token.</summary>
        static abstract Vector256<byte> Prepare(Vector256<sbyte> w);

        /// <summary>lanes += the four-element products of row (lane) and the token's bytes at <paramref name="y"/>.</summary>
        static abstract Vector256<int> Step(Vector256<int> sum, Vector256<byte> prepared, Vector256<sbyte> w, byte* y);

        /// <summary>The block's exact integer dot from its summed steps (<paramref name="e"/>: the token's block extras).</summary>
        static abstract Vector256<int> BlockSum(Vector256<int> sum, byte* e);
    }

    /// <summary>
    /// Where a signed-weight group kernel (<see cref="SignedX4"/> and its kin) gets a block's eight weight vectors, each
    /// four signed bytes of each of the eight rows: Q8_0 stores them (<see cref="Q8Weights"/>), IQ4_NL looks its
    /// nibbles up in the level table (<see cref="LevelWeights{K}"/>). Vector s holds elements 4s..4s+3 of the block in
    /// both, so the token's bytes for it are at 4s either way.
    /// </summary>
    private interface ISignedWeights
    {
        /// <summary>Bytes from one of the group's blocks to its next (the eight scales, then the eight rows' quants; a pair's block where the copy pairs its groups).</summary>
        static abstract int GroupBlockBytes { get; }

        /// <summary>The block's eight scales as floats, from the pointer the kernel is given (their place a constant, see <see cref="INibbleBlocks"/>).</summary>
        static abstract Vector256<float> Scales(byte* block);

        /// <summary>Weight vector s (0..7) of the group block at <paramref name="block"/>.</summary>
        static abstract Vector256<sbyte> Vector(byte* block, int s);
    }

    /// <summary>Q8_0: vector s is stored as it is used, at 16 + 32s.</summary>
    private readonly struct Q8Weights : ISignedWeights
    {
        public static int GroupBlockBytes => 8 * Q8_0Bytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Scales(byte* block) => VecDotAvx2.HalfToSingle((ushort*)block);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Vector(byte* block, int s) => Avx.LoadVector256((sbyte*)(block + 16 + 32 * s));
    }

    /// <summary>ggml's sign trick: lanes += |w| x sign(y, w) (vpsignb, vpmaddubsw, vpmaddwd; no int16 overflow).</summary>
    private readonly struct SignTrick : IQ8Multiply
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Prepare(Vector256<sbyte> w) => Avx2.Sign(w, w).AsByte();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Step(Vector256<int> sum, Vector256<byte> prepared, Vector256<sbyte> w, byte* y)
            => Avx2.Add(sum, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(prepared, Avx2.Sign(Broadcast4(y), w)), Vector256.Create((short)1)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockSum(Vector256<int> sum, byte* e) => sum;
    }

    /// <summary>acc = fma(dx * dy, float(sum), acc): the block's scale product and one FMA, per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> acc, Vector256<float> dx, byte* e, Vector256<int> sum)
        => Fma.MultiplyAdd(Avx.Multiply(dx, Vector256.Create(*(float*)e)), Avx.ConvertToVector256Single(sum), acc);

    /// <summary><see cref="Finish"/> for four tokens (activation extras at e, e + s1, e + s2, e + s3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish4(ref Vector256<float> a0, ref Vector256<float> a1, ref Vector256<float> a2, ref Vector256<float> a3,
        Vector256<float> dx, byte* e, nint s1, nint s2, nint s3, Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<int> i3)
    {
        a0 = Finish(a0, dx, e, i0);
        a1 = Finish(a1, dx, e + s1, i1);
        a2 = Finish(a2, dx, e + s2, i2);
        a3 = Finish(a3, dx, e + s3, i3);
    }

    /// <summary>
    /// Eight interleaved Q8_0 rows (group at <paramref name="w"/>) x four tokens (activation rows y + k * yStride):
    /// out[k * outStride + r] = dot(row r, token k).
    /// </summary>
    public static void Q8_0x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX4<Q8Weights, SignTrick>(w, y, yStride, n, output, outStride);

    /// <summary>
    /// Eight interleaved Q8_0 rows x eight tokens: <see cref="Q8_0x4"/> twice over, but each weight vector's load and
    /// preparation, and each block's scales, are shared by eight tokens instead of four.
    /// </summary>
    public static void Q8_0x8(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => SignedX8<Q8Weights, SignTrick>(w, y, yStride, n, output, outStride);

    /// <summary>
    /// <see cref="Q8_0x4"/> / <see cref="Q8_0x8"/> (and their VNNI twins) over one way of multiplying. Never inlined
    /// into those one-line wrappers: with tiered PGO (the default, and the CLI's setting) the Tier1 wrapper inlined the
    /// whole kernel, ran out of inlining budget there and left <see cref="Finish4"/>, <see cref="Finish"/> and
    /// <see cref="Store4"/> as calls, the float accumulators in memory and passed through the stack every block.
    /// Compiled on their own, every helper inlines and the accumulators stay in registers.
    /// </summary>
    /// <remarks>
    /// Measured in one process on the shared 2-core Zen 4 with the AVX2 kernels, one thread, MatMul's tiling (64-row
    /// tiles, 8-token chunks), median of 31 alternated rounds, this against the wrapper-inlined code: 768x768,
    /// 2048x768 and 32000x768 Q8_0 matrices by 8, 16 and 128 tokens, 1.41x to 1.48x as .NET compiles on that CPU (32
    /// vector registers), 1.36x to 1.48x with AVX-512 code generation off (DOTNET_EnableAVX512=0: 16 registers, VEX
    /// only, as on an AVX2-only CPU). The four-token kernel had kept its helpers; the eight-token one had been slower
    /// than it. Tried on top and dropped (ratios against this, same shapes): the sign applied by a mask (vpxor, vpsubb)
    /// instead of vpsignb, 1.03x to 1.05x with 32 registers but 0.95x to 0.98x with 16; the weights widened to int16
    /// for vpmaddwd alone (activations pre-widened), 0.90x to 1.03x with 32 registers, 0.74x to 0.85x with 16;
    /// prefetching the next group's block, no gain (0.71x to 1.01x); four tokens at a time, 0.93x to 0.96x; two groups
    /// (16 rows) by four tokens sharing each broadcast, 0.88x to 1.05x.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SignedX4<TWeights, TMultiply>(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        where TWeights : ISignedWeights where TMultiply : IQ8Multiply
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += TWeights.GroupBlockBytes, y += Q8_0Bytes, e += Extras)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int s = 0; s < 8; s++)
            {
                Vector256<sbyte> wv = TWeights.Vector(w, s);
                Vector256<byte> prepared = TMultiply.Prepare(wv);
                byte* q = y + 2 + 4 * s;
                i0 = TMultiply.Step(i0, prepared, wv, q);
                i1 = TMultiply.Step(i1, prepared, wv, q + s1);
                i2 = TMultiply.Step(i2, prepared, wv, q + s2);
                i3 = TMultiply.Step(i3, prepared, wv, q + s3);
            }
            Finish4(ref a0, ref a1, ref a2, ref a3, TWeights.Scales(w), e, s1, s2, s3,
                TMultiply.BlockSum(i0, e), TMultiply.BlockSum(i1, e + s1), TMultiply.BlockSum(i2, e + s2), TMultiply.BlockSum(i3, e + s3));
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    /// <summary>See <see cref="SignedX4"/>: never inlined into its wrappers, for the same reason.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SignedX8<TWeights, TMultiply>(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        where TWeights : ISignedWeights where TMultiply : IQ8Multiply
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride, s4 = 4 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int ib = 0; ib < nb; ib++, w += TWeights.GroupBlockBytes, y += Q8_0Bytes, e += Extras)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default, i4 = default, i5 = default, i6 = default, i7 = default;
            for (int s = 0; s < 8; s++)
            {
                Vector256<sbyte> wv = TWeights.Vector(w, s);
                Vector256<byte> prepared = TMultiply.Prepare(wv);
                byte* q = y + 2 + 4 * s, q4 = q + s4;
                i0 = TMultiply.Step(i0, prepared, wv, q);
                i1 = TMultiply.Step(i1, prepared, wv, q + s1);
                i2 = TMultiply.Step(i2, prepared, wv, q + s2);
                i3 = TMultiply.Step(i3, prepared, wv, q + s3);
                i4 = TMultiply.Step(i4, prepared, wv, q4);
                i5 = TMultiply.Step(i5, prepared, wv, q4 + s1);
                i6 = TMultiply.Step(i6, prepared, wv, q4 + s2);
                i7 = TMultiply.Step(i7, prepared, wv, q4 + s3);
            }
            Vector256<float> dx = TWeights.Scales(w);
            byte* e4 = e + s4;
            Finish4(ref a0, ref a1, ref a2, ref a3, dx, e, s1, s2, s3,
                TMultiply.BlockSum(i0, e), TMultiply.BlockSum(i1, e + s1), TMultiply.BlockSum(i2, e + s2), TMultiply.BlockSum(i3, e + s3));
            Finish4(ref a4, ref a5, ref a6, ref a7, dx, e4, s1, s2, s3,
                TMultiply.BlockSum(i4, e4), TMultiply.BlockSum(i5, e4 + s1), TMultiply.BlockSum(i6, e4 + s2), TMultiply.BlockSum(i7, e4 + s3));
        }
        Store4(output, outStride, a0, a1, a2, a3);
        Store4(output + 4 * outStride, outStride, a4, a5, a6, a7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* output, nint stride, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        Avx.Store(output, a0);
        Avx.Store(output + stride, a1);
        Avx.Store(output + 2 * stride, a2);
        Avx.Store(output + 3 * stride, a3);
    }

    /// <summary>Eight interleaved Q8_0 rows x one token: output[r] = dot(row r, y).</summary>
    public static void Q8_0x1(byte* w, byte* y, int n, float* output) => SignedX1<Q8Weights, SignTrick>(w, y, n, output);

    /// <summary>
    /// <see cref="Q8_0x1"/> / <see cref="Q8_0x1Vnni"/>: never inlined into those one-line wrappers (or any other small
    /// caller), for the reason <see cref="SignedX4"/> gives and <see cref="Q4_0x1"/> measured.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SignedX1<TWeights, TMultiply>(byte* w, byte* y, int n, float* output) where TWeights : ISignedWeights where TMultiply : IQ8Multiply
    {
        int nb = n / QK;
        byte* e = y + nb * Q8_0Bytes;
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += TWeights.GroupBlockBytes, y += Q8_0Bytes, e += Extras)
        {
            // Two partial sums shorten the dependency chain; integer adds are exact, so the split changes nothing.
            Vector256<int> i0 = default, i1 = default;
            for (int s = 0; s < 8; s += 2)
            {
                Vector256<sbyte> w0 = TWeights.Vector(w, s), w1 = TWeights.Vector(w, s + 1);
                i0 = TMultiply.Step(i0, TMultiply.Prepare(w0), w0, y + 2 + 4 * s);
                i1 = TMultiply.Step(i1, TMultiply.Prepare(w1), w1, y + 6 + 4 * s);
            }
            acc = Finish(acc, TWeights.Scales(w), e, TMultiply.BlockSum(Avx2.Add(i0, i1), e));
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Nibble groups (Q4_0, Q4_1, Q5_0, Q5_1): the unsigned quants times the activation bytes through vpmaddubsw. The
    /// Q4 types sum a block in int16 lanes: a lane pair is at most 2 x 15 x 127 = 3810, so a whole block (four steps,
    /// each adding two) stays below 32767 and is widened once. The Q5 types' quants reach 31 (a pair 7874), so each
    /// step's two products are added in int16 and widened there. A type is three facts; the kernels derive the rest
    /// (layout, activation format, float step) from them, and the JIT folds them per type.
    /// </summary>
    private interface INibbleBlocks
    {
        /// <summary>Whether the quants have a fifth bit (Q5_0, Q5_1): the eight rows' qh words come after the scales.</summary>
        static abstract bool FiveBits { get; }

        /// <summary>
        /// Whether the block has a min (Q4_1, Q5_1): the eight m after the eight d, Q8_1 activations with d and s as
        /// floats in their extras (<see cref="AppendExtrasQ8_1"/>), and acc = fma(m, s, acc) after each block.
        /// </summary>
        static abstract bool HasMins { get; }

        /// <summary>Bytes of one row's block.</summary>
        static abstract int BlockBytes { get; }

        // Where a group's parts lie, from the pointer its kernel is given: constants, so they cost the kernels' inlining
        // budget nothing (helpers computing them pushed the Q5_0 VNNI one-token kernel past that budget, and its steps
        // were left as calls). A paired copy's group (OfPair) is given its pair's first byte (InterleavedRows.PairedGroups).

        /// <summary>The eight d.</summary>
        static abstract int ScalesAt { get; }

        /// <summary>The eight m (types with mins).</summary>
        static abstract int MinsAt { get; }

        /// <summary>The fifth-bit plane (Q5 types).</summary>
        static abstract int PlaneAt { get; }

        /// <summary>Quant vector 0.</summary>
        static abstract int QuantsAt { get; }

        /// <summary>From one quant vector to the next.</summary>
        static abstract int QuantStride { get; }

        /// <summary>From one of the group's blocks to its next.</summary>
        static abstract int BlockStride { get; }
    }

    /// <summary>Q4_0: nibbles offset by 8 (taken off as 8·Σq from the extras).</summary>
    private readonly struct Q4_0Blocks : INibbleBlocks
    {
        public static bool FiveBits => false;
        public static bool HasMins => false;
        public static int BlockBytes => Q4_0Bytes;
        public static int ScalesAt => 0;
        public static int MinsAt => 0;
        public static int PlaneAt => 0;
        public static int QuantsAt => 16;
        public static int QuantStride => 32;
        public static int BlockStride => 8 * Q4_0Bytes;
    }

    /// <summary>A nibble type's blocks as the first (<see cref="First"/>) or second (<see cref="Second"/>) group of a paired copy's pair (<see cref="InterleavedRows.PairedGroups"/>).</summary>
    private readonly struct OfPair<T, H> : INibbleBlocks where T : INibbleBlocks where H : IPairHalf
    {
        public static bool FiveBits { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => T.FiveBits; }
        public static bool HasMins { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => T.HasMins; }
        public static int BlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => T.BlockBytes; }

        // Every part at twice its offset in a group block, the second group's right after the first's.
        public static int ScalesAt { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * T.ScalesAt + 16 * (H.Half - 1); }
        public static int MinsAt { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * T.MinsAt + 16 * (H.Half - 1); }
        public static int PlaneAt { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * T.PlaneAt + 32 * (H.Half - 1); }
        public static int QuantsAt { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * T.QuantsAt + 32 * (H.Half - 1); }
        public static int QuantStride => 64;
        public static int BlockStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * T.BlockStride; }
    }

    /// <summary>Which group of a pair (<see cref="OfPair{T, H}"/>): 1 the first, 2 the second.</summary>
    private interface IPairHalf
    {
        static abstract int Half { get; }
    }

    private readonly struct First : IPairHalf
    {
        public static int Half => 1;
    }

    private readonly struct Second : IPairHalf
    {
        public static int Half => 2;
    }

    /// <summary>Q4_1 in block order (<see cref="VecDotScalar.Q4_1"/>).</summary>
    private readonly struct Q4_1Blocks : INibbleBlocks
    {
        public static bool FiveBits => false;
        public static bool HasMins => true;
        public static int BlockBytes => Q4_1Bytes;
        public static int ScalesAt => 0;
        public static int MinsAt => 16;
        public static int PlaneAt => 0;
        public static int QuantsAt => 32;
        public static int QuantStride => 32;
        public static int BlockStride => 8 * Q4_1Bytes;
    }

    /// <summary>Q5_0 in block order (<see cref="VecDotScalar.Q5_0"/>): quants 0..31 offset by 16 (16·Σq, twice the extras' 8·Σq).</summary>
    private readonly struct Q5_0Blocks : INibbleBlocks
    {
        public static bool FiveBits => true;
        public static bool HasMins => false;
        public static int BlockBytes => Q5_0Bytes;
        public static int ScalesAt => 0;
        public static int MinsAt => 0;
        public static int PlaneAt => 16;
        public static int QuantsAt => 48;
        public static int QuantStride => 32;
        public static int BlockStride => 8 * Q5_0Bytes;
    }

    /// <summary>Q5_1 in block order (<see cref="VecDotScalar.Q5_1"/>).</summary>
    private readonly struct Q5_1Blocks : INibbleBlocks
    {
        public static bool FiveBits => true;
        public static bool HasMins => true;
        public static int BlockBytes => Q5_1Bytes;
        public static int ScalesAt => 0;
        public static int MinsAt => 16;
        public static int PlaneAt => 32;
        public static int QuantsAt => 64;
        public static int QuantStride => 32;
        public static int BlockStride => 8 * Q5_1Bytes;
    }

    /// <summary>Bytes of a token's activation block (Q8_0, or Q8_1 with mins).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActivationBlockBytes<T>() where T : INibbleBlocks => T.HasMins ? Q8_1Bytes : Q8_0Bytes;

    /// <summary>Offset of the 32 quants in a token's activation block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActivationQuants<T>() where T : INibbleBlocks => T.HasMins ? 4 : 2;

    /// <summary>The group's eight d (and m) in the block at w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GroupScales<T>(byte* w, out Vector256<float> d, out Vector256<float> m) where T : INibbleBlocks
    {
        d = VecDotAvx2.HalfToSingle((ushort*)(w + T.ScalesAt));
        m = T.HasMins ? VecDotAvx2.HalfToSingle((ushort*)(w + T.MinsAt)) : default;
    }

    /// <summary>Quant vector k (0..3) of the group block at w: its low and high quants as unsigned bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quants<T>(byte* w, int k, out Vector256<byte> lo, out Vector256<byte> hi) where T : INibbleBlocks
    {
        if (T.FiveBits) FiveBitQuants(w + T.PlaneAt, w + T.QuantsAt + T.QuantStride * k, k, out lo, out hi);
        else Nibbles(w + T.QuantsAt + T.QuantStride * k, out lo, out hi);
    }

    /// <summary>
    /// How a nibble group kernel multiplies: vpmaddubsw into int16 lanes (<see cref="Maddubs"/>, AVX2) or vpdpbusd
    /// straight into int32 lanes (<see cref="Dpbusd"/>, AVX-VNNI). Both take the quants as the unsigned operand, as
    /// they are, so no sign step is needed either way. The kernels are generic over it; the JIT folds it per kernel.
    /// </summary>
    private interface INibbleMultiply
    {
        /// <summary>Whether a step adds into int32 lanes (vpdpbusd), so a block's sum needs no widening.</summary>
        static abstract bool Vnni { get; }
    }

    /// <summary>AVX2: two vpmaddubsw per step (and their adds), int16 lanes widened per block or step (see <see cref="INibbleBlocks"/>).</summary>
    private readonly struct Maddubs : INibbleMultiply
    {
        public static bool Vnni => false;
    }

    /// <summary>
    /// AVX-VNNI: one vpdpbusd per half step, each multiplying four quant bytes by the token's four bytes and adding them
    /// into the lane's int32: two instructions per step where vpmaddubsw takes four (Q4) or five (Q5). The integers are
    /// exact either way (vpmaddubsw never saturates here: a pair is at most 2 x 31 x 128), so every block sum, and with
    /// the same float finish every output, has the AVX2 kernels' bits.
    /// </summary>
    private readonly struct Dpbusd : INibbleMultiply
    {
        public static bool Vnni => true;
    }

    /// <summary>Whether a step's sum is in int32 lanes (Q5, or any type on VNNI) rather than int16 lanes to widen.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Int32Lanes<T, TM>() where T : INibbleBlocks where TM : INibbleMultiply => T.FiveBits || TM.Vnni;

    /// <summary>
    /// sum += lo x the token's bytes at q, hi x those at q + 16 (in the lanes <see cref="Int32Lanes"/> says). Spelled out
    /// rather than as two <see cref="KStep"/>s: that one more level of inlining cost the kernels under tiered PGO (plain /
    /// interleaved through MatMul on Zen 5, Q4_0 one token on VNNI 2.4-2.7x against 4.0-4.2x, Q4_1 eight tokens 6.4-7.0x
    /// against 8.2x).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Step<T, TM>(Vector256<int> sum, Vector256<byte> lo, Vector256<byte> hi, byte* q) where T : INibbleBlocks where TM : INibbleMultiply
    {
        if (TM.Vnni) return AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(sum, lo, Broadcast4(q)), hi, Broadcast4(q + 16));
        return T.FiveBits ? Q5Step(sum, lo, hi, q) : Q4Step(sum, lo, hi, q);
    }

    /// <summary>Two partial sums added in their lanes: int32 where <paramref name="int32Lanes"/>, else int16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> AddInLanes(bool int32Lanes, Vector256<int> x, Vector256<int> y)
        => int32Lanes ? Avx2.Add(x, y) : Avx2.Add(x.AsInt16(), y.AsInt16()).AsInt32();

    /// <summary>
    /// One block into a token's accumulator (e: the token block's extras): acc = fma(dx·dy, sum, acc), the quants'
    /// offset (Q4_0: 8·Σq, Q5_0: 16·Σq) taken off the sum first, or with mins then acc = fma(m, s, acc).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FinishBlock<T, TM>(Vector256<float> acc, Vector256<float> d, Vector256<float> m, byte* e, Vector256<int> sum)
        where T : INibbleBlocks where TM : INibbleMultiply
    {
        Vector256<int> block = Int32Lanes<T, TM>() ? sum : Widen(sum);
        if (T.HasMins) return FinishWithMin(acc, d, m, e, block);
        return Finish(acc, d, e, Avx2.Subtract(block, Vector256.Create(T.FiveBits ? *(int*)(e + 4) << 1 : *(int*)(e + 4))));
    }

    /// <summary>The low and high nibbles of the quant vector at p (elements 4k.., 16 + 4k.. of its vector k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles(byte* p, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        Vector256<byte> v = Avx.LoadVector256(p), mask = Vector256.Create((byte)0x0F);
        lo = Avx2.And(v, mask);
        hi = Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask);
    }

    /// <summary>
    /// Quant vector k of a Q5 group block, at <paramref name="quants"/>, whose fifth-bit plane is at <paramref name="qh"/>
    /// (<see cref="InterleavedRows.FifthBitPlane"/>): the nibbles with their fifth bits or'ed in (0..31). The plane keeps
    /// the low nibbles' bits for vector k at bit 4 + k of each byte and the high nibbles' at bit k, so a 16-bit shift
    /// brings them to bit 4 (no bit crosses into the other byte of the word) and a mask keeps them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiveBitQuants(byte* qh, byte* quants, int k, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        Nibbles(quants, out lo, out hi);
        Vector256<ushort> plane = Avx.LoadVector256((ushort*)qh);
        Vector256<byte> fifth = Vector256.Create((byte)0x10);
        lo = Avx2.Or(lo, Avx2.And(Vector256.ShiftRightLogical(plane, k).AsByte(), fifth));
        hi = Avx2.Or(hi, Avx2.And(Vector256.ShiftLeft(plane, 4 - k).AsByte(), fifth));
    }

    /// <summary>Q4 types: the block summed in int16 lanes, the two halves' products added there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4Step(Vector256<int> sum, Vector256<byte> lo, Vector256<byte> hi, byte* q)
        => Avx2.Add(Avx2.Add(sum.AsInt16(), Avx2.MultiplyAddAdjacent(lo, Broadcast4(q))), Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + 16))).AsInt32();

    /// <summary>Q5 types: each step's two products added in int16 (at most 2 x 7874), then widened into int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q5Step(Vector256<int> sum, Vector256<byte> lo, Vector256<byte> hi, byte* q)
        => Avx2.Add(sum, Avx2.MultiplyAddAdjacent(Avx2.Add(Avx2.MultiplyAddAdjacent(lo, Broadcast4(q)), Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + 16))), Vector256.Create((short)1)));

    /// <summary>A Q4 block's int16 lanes widened to int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Widen(Vector256<int> sum) => Avx2.MultiplyAddAdjacent(sum.AsInt16(), Vector256.Create((short)1));

    /// <summary>Q4_1 and Q5_1's float step: acc = fma(dx·dy, sum, acc), then fma(m, s, acc) with the Q8_1 extras' dy and s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FinishWithMin(Vector256<float> acc, Vector256<float> d, Vector256<float> m, byte* e, Vector256<int> sum)
    {
        acc = Fma.MultiplyAdd(Avx.Multiply(d, Vector256.Create(*(float*)e)), Avx.ConvertToVector256Single(sum), acc);
        return Fma.MultiplyAdd(m, Vector256.Create(*(float*)(e + 4)), acc);
    }

    /// <summary>
    /// The group kernels of a nibble type (Q4_0, Q4_1, Q5_0, Q5_1) by one, four and eight tokens, on AVX-VNNI
    /// (<paramref name="vnni"/>) or AVX2.
    /// </summary>
    public static void NibbleKernels(GgmlType type, bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
    {
        switch (type)
        {
            case GgmlType.Q4_0: Kernels<Q4_0Blocks>(vnni, out one, out four, out eight); break;
            case GgmlType.Q4_1: Kernels<Q4_1Blocks>(vnni, out one, out four, out eight); break;
            case GgmlType.Q5_0: Kernels<Q5_0Blocks>(vnni, out one, out four, out eight); break;
            case GgmlType.Q5_1: Kernels<Q5_1Blocks>(vnni, out one, out four, out eight); break;
            default: throw new NotSupportedException($"VecDotAvx2Interleaved: {type} is not a nibble type (Q4_0, Q4_1, Q5_0, Q5_1)");
        }
    }

    /// <summary>
    /// A nibble type's (or IQ4_NL's, MXFP4's) group kernels for the first or (<paramref name="second"/>) the second group of a pair in a paired
    /// copy (<see cref="InterleavedRows.PairedGroups"/>): given the pair's first byte, they give the plain kernels' bits.
    /// </summary>
    public static void PairedNibbleKernels(GgmlType type, bool vnni, bool second, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
    {
        if (IsLevelType(type))
        {
            if (second) LevelPairKernels<Second>(type, vnni, out one, out four, out eight);
            else LevelPairKernels<First>(type, vnni, out one, out four, out eight);
        }
        else if (second) PairedNibbleKernels<Second>(type, vnni, out one, out four, out eight);
        else PairedNibbleKernels<First>(type, vnni, out one, out four, out eight);
    }

    private static void PairedNibbleKernels<H>(GgmlType type, bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where H : IPairHalf
    {
        switch (type)
        {
            case GgmlType.Q4_0: Kernels<OfPair<Q4_0Blocks, H>>(vnni, out one, out four, out eight); break;
            case GgmlType.Q4_1: Kernels<OfPair<Q4_1Blocks, H>>(vnni, out one, out four, out eight); break;
            case GgmlType.Q5_0: Kernels<OfPair<Q5_0Blocks, H>>(vnni, out one, out four, out eight); break;
            case GgmlType.Q5_1: Kernels<OfPair<Q5_1Blocks, H>>(vnni, out one, out four, out eight); break;
            default: throw new NotSupportedException($"VecDotAvx2Interleaved: {type} groups are not paired (only Q4_0, Q4_1, Q5_0, Q5_1)");
        }
    }

    /// <summary>Whether <paramref name="type"/> has nibble group kernels (<see cref="NibbleKernels"/>).</summary>
    public static bool IsNibbleType(GgmlType type) => type is GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1;

    private static void Kernels<T>(bool vnni, out delegate*<byte*, byte*, int, float*, void> one,
        out delegate*<byte*, byte*, nint, int, float*, nint, void> four, out delegate*<byte*, byte*, nint, int, float*, nint, void> eight)
        where T : INibbleBlocks
    {
        if (vnni)
        {
            one = &NibblesX1<T, Dpbusd>;
            four = &NibblesX4<T, Dpbusd>;
            eight = &NibblesX8<T, Dpbusd>;
        }
        else
        {
            one = &NibblesX1<T, Maddubs>;
            four = &NibblesX4<T, Maddubs>;
            eight = &NibblesX8<T, Maddubs>;
        }
    }

    /// <summary>The first activation extras of a row of <paramref name="n"/> elements at y (past its blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* ExtrasOf<T>(byte* y, int n) where T : INibbleBlocks => y + n / QK * ActivationBlockBytes<T>();

    /// <summary>Eight unsigned-nibble rows x four tokens; never inlined into its wrappers (see <see cref="SignedX4"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void NibblesX4<T, TM>(byte* w, byte* y, nint yStride, int n, float* output, nint outStride) where T : INibbleBlocks where TM : INibbleMultiply
    {
        int nb = n / QK;
        byte* e = ExtrasOf<T>(y, n);
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += T.BlockStride, y += ActivationBlockBytes<T>(), e += Extras)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int k = 0; k < 4; k++)
            {
                Quants<T>(w, k, out Vector256<byte> lo, out Vector256<byte> hi);
                byte* q = y + ActivationQuants<T>() + 4 * k;
                i0 = Step<T, TM>(i0, lo, hi, q);
                i1 = Step<T, TM>(i1, lo, hi, q + s1);
                i2 = Step<T, TM>(i2, lo, hi, q + s2);
                i3 = Step<T, TM>(i3, lo, hi, q + s3);
            }
            GroupScales<T>(w, out Vector256<float> d, out Vector256<float> m);
            a0 = FinishBlock<T, TM>(a0, d, m, e, i0);
            a1 = FinishBlock<T, TM>(a1, d, m, e + s1, i1);
            a2 = FinishBlock<T, TM>(a2, d, m, e + s2, i2);
            a3 = FinishBlock<T, TM>(a3, d, m, e + s3, i3);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    /// <summary>Eight unsigned-nibble rows x eight tokens; never inlined into its wrappers (see <see cref="SignedX4"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void NibblesX8<T, TM>(byte* w, byte* y, nint yStride, int n, float* output, nint outStride) where T : INibbleBlocks where TM : INibbleMultiply
    {
        int nb = n / QK;
        byte* e = ExtrasOf<T>(y, n);
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride, s4 = 4 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int ib = 0; ib < nb; ib++, w += T.BlockStride, y += ActivationBlockBytes<T>(), e += Extras)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default, i4 = default, i5 = default, i6 = default, i7 = default;
            for (int k = 0; k < 4; k++)
            {
                Quants<T>(w, k, out Vector256<byte> lo, out Vector256<byte> hi);
                byte* q = y + ActivationQuants<T>() + 4 * k, q4 = q + s4;
                i0 = Step<T, TM>(i0, lo, hi, q);
                i1 = Step<T, TM>(i1, lo, hi, q + s1);
                i2 = Step<T, TM>(i2, lo, hi, q + s2);
                i3 = Step<T, TM>(i3, lo, hi, q + s3);
                i4 = Step<T, TM>(i4, lo, hi, q4);
                i5 = Step<T, TM>(i5, lo, hi, q4 + s1);
                i6 = Step<T, TM>(i6, lo, hi, q4 + s2);
                i7 = Step<T, TM>(i7, lo, hi, q4 + s3);
            }
            GroupScales<T>(w, out Vector256<float> d, out Vector256<float> m);
            byte* e4 = e + s4;
            a0 = FinishBlock<T, TM>(a0, d, m, e, i0);
            a1 = FinishBlock<T, TM>(a1, d, m, e + s1, i1);
            a2 = FinishBlock<T, TM>(a2, d, m, e + s2, i2);
            a3 = FinishBlock<T, TM>(a3, d, m, e + s3, i3);
            a4 = FinishBlock<T, TM>(a4, d, m, e4, i4);
            a5 = FinishBlock<T, TM>(a5, d, m, e4 + s1, i5);
            a6 = FinishBlock<T, TM>(a6, d, m, e4 + s2, i6);
            a7 = FinishBlock<T, TM>(a7, d, m, e4 + s3, i7);
        }
        Store4(output, outStride, a0, a1, a2, a3);
        Store4(output + 4 * outStride, outStride, a4, a5, a6, a7);
    }

    /// <summary>
    /// Eight interleaved Q4_0 rows x one token, four blocks per iteration: each block's exact integer
    /// (<see cref="NibbleBlock"/>), then the four FMAs into the one accumulator in block order, so the bits are the
    /// one-block loop's. Against the one-block loop, in-process A/B over a stories110M-sized model's matrices
    /// (62 MB, from memory) on Zen 4 restricted to AVX2: 1.00-1.07x, median about 1.02x (medians of 300 interleaved
    /// rounds, single-threaded and on a 2-thread pool; two blocks per iteration: 1.00-1.01x). Decode streams
    /// weights: a kernel that only loads the same bytes is 1.03-1.15x faster than this one, so there is little
    /// arithmetic left to hide. Never inlined: MatMul calls it through a function pointer, but a one-line wrapper that
    /// took it in under tiered PGO (a benchmark's) ran out of inlining budget and called <see cref="NibbleBlock"/> and
    /// <see cref="Finish"/>: 2.3x slower on weights in L2 (the fault <see cref="SignedX4"/> describes).
    /// </summary>
    public static void Q4_0x1(byte* w, byte* y, int n, float* output) => NibblesX1<Q4_0Blocks, Maddubs>(w, y, n, output);

    /// <summary>Eight unsigned-nibble rows x one token (see <see cref="Q4_0x1"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void NibblesX1<T, TM>(byte* w, byte* y, int n, float* output) where T : INibbleBlocks where TM : INibbleMultiply
    {
        int B = T.BlockStride, A = ActivationBlockBytes<T>();
        int nb = n / QK, ib = 0;
        byte* e = ExtrasOf<T>(y, n);
        Vector256<float> acc = default, d, m;
        for (; ib + 4 <= nb; ib += 4, w += 4 * B, y += 4 * A, e += 4 * Extras)
        {
            Vector256<int> s0 = NibbleBlock<T, TM>(w, y), s1 = NibbleBlock<T, TM>(w + B, y + A);
            Vector256<int> s2 = NibbleBlock<T, TM>(w + 2 * B, y + 2 * A), s3 = NibbleBlock<T, TM>(w + 3 * B, y + 3 * A);
            GroupScales<T>(w, out d, out m);
            acc = FinishBlock<T, TM>(acc, d, m, e, s0);
            GroupScales<T>(w + B, out d, out m);
            acc = FinishBlock<T, TM>(acc, d, m, e + Extras, s1);
            GroupScales<T>(w + 2 * B, out d, out m);
            acc = FinishBlock<T, TM>(acc, d, m, e + 2 * Extras, s2);
            GroupScales<T>(w + 3 * B, out d, out m);
            acc = FinishBlock<T, TM>(acc, d, m, e + 3 * Extras, s3);
        }
        for (; ib < nb; ib++, w += B, y += A, e += Extras)
        {
            GroupScales<T>(w, out d, out m);
            acc = FinishBlock<T, TM>(acc, d, m, e, NibbleBlock<T, TM>(w, y));
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// One nibble group block (at <paramref name="w"/>) times one token's block (at <paramref name="y"/>): the eight
    /// rows' block sums over two chains (integer adds are exact, so the split changes nothing).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> NibbleBlock<T, TM>(byte* w, byte* y) where T : INibbleBlocks where TM : INibbleMultiply
    {
        byte* q = y + ActivationQuants<T>();
        Quants<T>(w, 0, out var lo0, out var hi0);
        Quants<T>(w, 1, out var lo1, out var hi1);
        Vector256<int> i0 = Step<T, TM>(default, lo0, hi0, q), i1 = Step<T, TM>(default, lo1, hi1, q + 4);
        Quants<T>(w, 2, out lo0, out hi0);
        Quants<T>(w, 3, out lo1, out hi1);
        i0 = Step<T, TM>(i0, lo0, hi0, q + 8);
        i1 = Step<T, TM>(i1, lo1, hi1, q + 12);
        return AddInLanes(Int32Lanes<T, TM>(), i0, i1);
    }

    /// <summary>
    /// Offsets in a Q4_K / Q5_K group's super-block (see <see cref="InterleavedRows"/>): scales (both), quants, Q5_K's
    /// fifth bits (qh word s serves quant word 8j + s of every j), next block.
    /// </summary>
    internal const int K4Scales = 32, K4Qs = 128, K4Block = 8 * Q4_KBytes, K5Qh = 128, K5Qs = K5Qh + 8 * 32, K5Block = 8 * Q5_KBytes;

    /// <summary>
    /// Scales of the eight rows (ggml's utmp unpacking, <see cref="VecDotAvx2.UnpackScalesK4"/>, on all lanes at once):
    /// lane r of <paramref name="sc03"/> holds row r's 6-bit scales 0..3, one byte each; <paramref name="sc47"/> 4..7.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesK4(byte* p, out Vector256<byte> sc03, out Vector256<byte> sc47)
    {
        Vector256<uint> u0 = Avx.LoadVector256((uint*)p), u2 = Avx.LoadVector256((uint*)(p + 64));
        sc03 = (u0 & Vector256.Create(0x3f3f3f3fu)).AsByte();
        sc47 = ((u2 & Vector256.Create(0x0f0f0f0fu)) | (((u0 >> 6) & Vector256.Create(0x03030303u)) << 4)).AsByte();
    }

    /// <summary>The eight rows' mins like <see cref="ScalesK4"/>: lane r of mn03 holds row r's mins 0..3, mn47 4..7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MinsK4(byte* p, out Vector256<byte> mn03, out Vector256<byte> mn47)
    {
        Vector256<uint> u1 = Avx.LoadVector256((uint*)(p + 32)), u2 = Avx.LoadVector256((uint*)(p + 64));
        mn03 = (u1 & Vector256.Create(0x3f3f3f3fu)).AsByte();
        mn47 = (((u2 >> 4) & Vector256.Create(0x0f0f0f0fu)) | (((u1 >> 6) & Vector256.Create(0x03030303u)) << 4)).AsByte();
    }

    /// <summary>vpshufb indexes of each 32-bit lane's own bytes (4i within a 128-bit half).</summary>
    private static Vector256<uint> LaneBytes => Vector256.Create(0u, 0x00040004u, 0x00080008u, 0x000C000Cu, 0u, 0x00040004u, 0x00080008u, 0x000C000Cu);

    /// <summary>Byte <paramref name="k"/> (0..3) of each 32-bit lane, zero-extended into both of its int16 halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ByteInBothHalves(Vector256<byte> v, int k)
        => Avx2.Shuffle(v, (Vector256.Create(0x80008000u + (uint)k * 0x00010001u) + LaneBytes).AsByte()).AsInt16();

    /// <summary>Bytes 2h and 2h + 1 of each 32-bit lane, zero-extended to its two int16 halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> BytePair(Vector256<byte> v, int h)
        => Avx2.Shuffle(v, (Vector256.Create(0x80018000u + (uint)h * 0x00020002u) + LaneBytes).AsByte()).AsInt16();

    /// <summary>vpshufb indexes of each 32-bit lane's first byte (4i within a 128-bit half).</summary>
    private static Vector256<uint> LaneFirstBytes => Vector256.Create(0u, 4u, 8u, 12u, 0u, 4u, 8u, 12u);

    /// <summary>
    /// A K-quant sub-block's scales as <see cref="KScale"/> takes them: byte <paramref name="k"/> (0..3) of each 32-bit
    /// lane zero-extended into both int16 halves for vpmaddwd, or into the whole int32 lane for vpmulld (VNNI).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> KScales<TM>(Vector256<byte> sc, int k) where TM : INibbleMultiply
        => TM.Vnni ? Avx2.Shuffle(sc, (Vector256.Create(0x80808000u + (uint)k) + LaneFirstBytes).AsByte()).AsInt32() : ByteInBothHalves(sc, k).AsInt32();

    /// <summary>sum += quants x the token's four bytes at q: int16 lanes (vpmaddubsw) or int32 (vpdpbusd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> KStep<TM>(Vector256<int> sum, Vector256<byte> quants, byte* q) where TM : INibbleMultiply
        => TM.Vnni ? AvxVnni.MultiplyWideningAndAdd(sum, quants, Broadcast4(q)) : Avx2.Add(sum.AsInt16(), Avx2.MultiplyAddAdjacent(quants, Broadcast4(q))).AsInt32();

    /// <summary>
    /// A sub-block's summed steps times its scales (<see cref="KScales"/>), into int32 lanes: vpmaddwd of the int16 sums,
    /// or vpmulld of the int32 ones. Exact either way (a sub-block's sum is at most 32 x 31 x 128, times a 6-bit scale).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> KScale<TM>(Vector256<int> sum, Vector256<int> scales) where TM : INibbleMultiply
        => TM.Vnni ? Avx2.MultiplyLow(sum, scales) : Avx2.MultiplyAddAdjacent(sum.AsInt16(), scales.AsInt16());

    /// <summary>
    /// msum of <see cref="VecDotScalar.Q4_K"/> per lane: Σ_k min_k · bsum32_k, the token's 32-element quant sums
    /// (|bsum32| ≤ 4096, an int16) broadcast as pairs against each row's pair of mins.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MinSums(Vector256<byte> mn03, Vector256<byte> mn47, byte* y)
    {
        short* bs = (short*)(y + Q8_K_Bsums);
        Vector128<short> b = Ssse3.HorizontalAdd(Sse2.LoadVector128(bs), Sse2.LoadVector128(bs + 8));
        Vector256<int> bb = Vector256.Create(b, b).AsInt32();
        return Avx2.Add(
            Avx2.Add(Avx2.MultiplyAddAdjacent(BytePair(mn03, 0), Avx2.Shuffle(bb, 0x00).AsInt16()),
                Avx2.MultiplyAddAdjacent(BytePair(mn03, 1), Avx2.Shuffle(bb, 0x55).AsInt16())),
            Avx2.Add(Avx2.MultiplyAddAdjacent(BytePair(mn47, 0), Avx2.Shuffle(bb, 0xAA).AsInt16()),
                Avx2.MultiplyAddAdjacent(BytePair(mn47, 1), Avx2.Shuffle(bb, 0xFF).AsInt16())));
    }

    /// <summary><see cref="VecDotScalar.AccumulateK4"/> on eight rows: acc = fma(dy·d, isum, acc) then -(dy·dmin)·msum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FinishK4(Vector256<float> acc, byte* w, byte* y, Vector256<int> isum, Vector256<byte> mn03, Vector256<byte> mn47)
    {
        Vector256<float> dy = Vector256.Create(*(float*)y);
        acc = Fma.MultiplyAdd(Avx.Multiply(dy, VecDotAvx2.HalfToSingle((ushort*)w)), Avx.ConvertToVector256Single(isum), acc);
        return Fma.MultiplyAddNegated(Avx.Multiply(dy, VecDotAvx2.HalfToSingle((ushort*)(w + 16))),
            Avx.ConvertToVector256Single(MinSums(mn03, mn47, y)), acc);
    }

    /// <summary>
    /// Eight interleaved Q4_K rows x four tokens; see <see cref="Q8_0x4"/>. Two sub-blocks at a time (the low and
    /// high nibbles of the same quant vectors; 32 elements and one 6-bit scale per row each): the nibbles times the
    /// broadcast activation bytes summed in int16 lanes (eight accumulators: two sub-blocks x four tokens), then one
    /// vpmaddwd per sub-block by the rows' scales into int32. Bound: a vpmaddubsw pair is at most 2 x 15 x 128 = 3840 in magnitude and a
    /// sub-block adds eight of them, at most 30720 &lt; 32767, so neither the saturating multiply nor the adds overflow.
    /// </summary>
    public static void Q4_Kx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => QuantKx4(w, y, yStride, n, output, outStride, K4Block, K4Qs, -1);

    /// <summary>
    /// Eight interleaved Q5_K rows x four tokens, as <see cref="Q4_Kx4"/> with each quant's fifth bit (bit k of its qh
    /// byte for sub-block k) or'ed in. Quants up to 31 make a pair at most 2 x 31 x 128 = 7936, so the int16 lanes are
    /// widened every four words (31744 &lt; 32767), twice per sub-block.
    /// </summary>
    public static void Q5_Kx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
        => QuantKx4(w, y, yStride, n, output, outStride, K5Block, K5Qs, K5Qh);

    /// <summary>
    /// Q4_K (<paramref name="qh"/> &lt; 0) or Q5_K groups x four tokens; offsets within a group's super-block. These
    /// serve the VNNI path too: the same loop on vpdpbusd into int32 lanes (and vpmulld by the scales) ran 0.82-0.88x
    /// as fast on Zen 5 with eight accumulators, 0.95x with sixteen (in-process A/B, `bench interleaved 31 Q4_K
    /// 2048x768 4|64 paths avx2 avx2-vnni`), where for one token it is 1.13-1.18x faster (<see cref="Q4_Kx1Vnni"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantKx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride, int blockBytes, int qs, int qh)
    {
        int nb = n / QK_K, words = qh < 0 ? 8 : 4;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<byte> mask = Vector256.Create((byte)0x0F), one = Vector256.Create((byte)1);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += blockBytes, y += Q8_KBytes)
        {
            ScalesK4(w + K4Scales, out Vector256<byte> sc03, out Vector256<byte> sc47);
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int j = 0; j < 4; j++)
            {
                // Sub-blocks 2j and 2j + 1: elements 64j.., the low and high nibbles of quant vectors 8j..8j+7.
                byte* wv = w + qs + 256 * j, hv = w + qh, q = y + Q8_K_Qs + 64 * j;
                Vector128<ushort> hLo = Vector128.CreateScalar((ushort)(2 * j)), hHi = Vector128.CreateScalar((ushort)(2 * j + 1));
                Vector256<byte> sc = j < 2 ? sc03 : sc47;
                Vector256<short> scLo = ByteInBothHalves(sc, 2 * (j & 1)), scHi = ByteInBothHalves(sc, 2 * (j & 1) + 1);
                for (int part = 0; part < 8; part += words)
                {
                    Vector256<short> l0 = default, l1 = default, l2 = default, l3 = default;
                    Vector256<short> h0 = default, h1 = default, h2 = default, h3 = default;
                    for (int s = 0; s < words; s++, wv += 32, hv += 32, q += 4)
                    {
                        Vector256<byte> v = Avx.LoadVector256(wv);
                        Vector256<byte> lo = Avx2.And(v, mask), hi = Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask);
                        if (qh >= 0)
                        {
                            lo = Avx2.Or(lo, FifthBits(hv, hLo, one));
                            hi = Avx2.Or(hi, FifthBits(hv, hHi, one));
                        }
                        l0 = Avx2.Add(l0, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q)));
                        l1 = Avx2.Add(l1, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q + s1)));
                        l2 = Avx2.Add(l2, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q + s2)));
                        l3 = Avx2.Add(l3, Avx2.MultiplyAddAdjacent(lo, Broadcast4(q + s3)));
                        h0 = Avx2.Add(h0, Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + 32)));
                        h1 = Avx2.Add(h1, Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + s1 + 32)));
                        h2 = Avx2.Add(h2, Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + s2 + 32)));
                        h3 = Avx2.Add(h3, Avx2.MultiplyAddAdjacent(hi, Broadcast4(q + s3 + 32)));
                    }
                    i0 = Avx2.Add(i0, Avx2.Add(Avx2.MultiplyAddAdjacent(l0, scLo), Avx2.MultiplyAddAdjacent(h0, scHi)));
                    i1 = Avx2.Add(i1, Avx2.Add(Avx2.MultiplyAddAdjacent(l1, scLo), Avx2.MultiplyAddAdjacent(h1, scHi)));
                    i2 = Avx2.Add(i2, Avx2.Add(Avx2.MultiplyAddAdjacent(l2, scLo), Avx2.MultiplyAddAdjacent(h2, scHi)));
                    i3 = Avx2.Add(i3, Avx2.Add(Avx2.MultiplyAddAdjacent(l3, scLo), Avx2.MultiplyAddAdjacent(h3, scHi)));
                }
            }
            MinsK4(w + K4Scales, out Vector256<byte> mn03, out Vector256<byte> mn47);
            a0 = FinishK4(a0, w, y, i0, mn03, mn47);
            a1 = FinishK4(a1, w, y + s1, i1, mn03, mn47);
            a2 = FinishK4(a2, w, y + s2, i2, mn03, mn47);
            a3 = FinishK4(a3, w, y + s3, i3, mn03, mn47);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    /// <summary>
    /// Q5_K: 16 x bit b (= <paramref name="shift"/>, 0..7) of each qh byte at <paramref name="hv"/>. The shifts act on
    /// 16-bit lanes, but after the right shift bit 0 of each byte is that byte's own bit b (bits from the upper byte
    /// land at bits 8 - b and above, masked off), and the left shift by 4 stays within the byte.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> FifthBits(byte* hv, Vector128<ushort> shift, Vector256<byte> one)
        => Avx2.ShiftLeftLogical(Avx2.And(Avx2.ShiftRightLogical(Avx.LoadVector256(hv).AsUInt16(), shift).AsByte(), one).AsUInt16(), 4).AsByte();

    /// <summary>
    /// Eight interleaved Q4_K rows x one token; low and high nibbles of each quant vector in one pass. Written out in
    /// full (<see cref="SubBlockPairK4"/> four times, each eight words long): the JIT kept the loop over words, six
    /// scalar instructions of counter and addressing beside each word's eleven vector ones. In-process A/B against
    /// the loop over a stories110M-sized model's matrices (62 MB, from memory) on Zen 4 restricted to AVX2: 1.02-1.18x,
    /// median about 1.04x (300 interleaved rounds, single-threaded and on a 2-thread pool; those runs' second set used
    /// DOTNET_EnableAVX512F=0, which .NET 10 ignores, so the JIT's AVX-512 encodings stayed on: DOTNET_EnableAVX512=0
    /// turns them off, as the suite's AVX2-only rerun does).
    /// </summary>
    public static void Q4_Kx1(byte* w, byte* y, int n, float* output) => QuantK4x1<Maddubs>(w, y, n, output);

    /// <summary><see cref="Q4_Kx1"/>, generic over how it multiplies (<see cref="INibbleMultiply"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void QuantK4x1<TM>(byte* w, byte* y, int n, float* output) where TM : INibbleMultiply
    {
        int nb = n / QK_K;
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += K4Block, y += Q8_KBytes)
        {
            ScalesK4(w + K4Scales, out Vector256<byte> sc03, out Vector256<byte> sc47);
            byte* wv = w + K4Qs, q = y + Q8_K_Qs;
            Vector256<int> isum = Avx2.Add(SubBlockPairK4<TM>(wv, q, sc03, 0, mask), SubBlockPairK4<TM>(wv + 256, q + 64, sc03, 2, mask));
            isum = Avx2.Add(isum, Avx2.Add(SubBlockPairK4<TM>(wv + 512, q + 128, sc47, 0, mask), SubBlockPairK4<TM>(wv + 768, q + 192, sc47, 2, mask)));
            MinsK4(w + K4Scales, out Vector256<byte> mn03, out Vector256<byte> mn47);
            acc = FinishK4(acc, w, y, isum, mn03, mn47);
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// Sub-blocks 2j and 2j + 1 of a Q4_K group (the low and high nibbles of the eight quant vectors at
    /// <paramref name="wv"/>) times one token's bytes at <paramref name="q"/>, scaled by bytes k and k + 1 of
    /// <paramref name="sc"/>: int32 lanes. Two int16 chains per sub-block, added before the widening; each holds at most
    /// four of the eight pairs, so with the bound of <see cref="Q4_Kx4"/> no sum overflows and the result is exact.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SubBlockPairK4<TM>(byte* wv, byte* q, Vector256<byte> sc, int k, Vector256<byte> mask) where TM : INibbleMultiply
    {
        Vector256<int> lo0 = default, hi0 = default, lo1 = default, hi1 = default;
        NibblesK4<TM>(wv, q, mask, ref lo0, ref hi0);
        NibblesK4<TM>(wv + 32, q + 4, mask, ref lo1, ref hi1);
        NibblesK4<TM>(wv + 64, q + 8, mask, ref lo0, ref hi0);
        NibblesK4<TM>(wv + 96, q + 12, mask, ref lo1, ref hi1);
        NibblesK4<TM>(wv + 128, q + 16, mask, ref lo0, ref hi0);
        NibblesK4<TM>(wv + 160, q + 20, mask, ref lo1, ref hi1);
        NibblesK4<TM>(wv + 192, q + 24, mask, ref lo0, ref hi0);
        NibblesK4<TM>(wv + 224, q + 28, mask, ref lo1, ref hi1);
        return Avx2.Add(KScale<TM>(AddInLanes(TM.Vnni, lo0, lo1), KScales<TM>(sc, k)), KScale<TM>(AddInLanes(TM.Vnni, hi0, hi1), KScales<TM>(sc, k + 1)));
    }

    /// <summary>One Q4_K quant word: lo += its low nibbles x the token's bytes at q, hi += its high nibbles x those at q + 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NibblesK4<TM>(byte* wv, byte* q, Vector256<byte> mask, ref Vector256<int> lo, ref Vector256<int> hi) where TM : INibbleMultiply
    {
        Vector256<byte> v = Avx.LoadVector256(wv);
        lo = KStep<TM>(lo, Avx2.And(v, mask), q);
        hi = KStep<TM>(hi, Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask), q + 32);
    }

    /// <summary>
    /// Eight interleaved Q5_K rows x one token; see <see cref="Q5_Kx4"/>. Written out like <see cref="Q4_Kx1"/>
    /// (<see cref="SubBlockPairK5"/> four times): 1.10-1.14x against the loops in the same A/B (75 MB of Q5_K).
    /// </summary>
    public static void Q5_Kx1(byte* w, byte* y, int n, float* output) => QuantK5x1<Maddubs>(w, y, n, output);

    /// <summary><see cref="Q5_Kx1"/>, generic over how it multiplies (<see cref="INibbleMultiply"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void QuantK5x1<TM>(byte* w, byte* y, int n, float* output) where TM : INibbleMultiply
    {
        int nb = n / QK_K;
        Vector256<byte> mask = Vector256.Create((byte)0x0F), one = Vector256.Create((byte)1);
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += K5Block, y += Q8_KBytes)
        {
            ScalesK4(w + K4Scales, out Vector256<byte> sc03, out Vector256<byte> sc47);
            byte* wv = w + K5Qs, hv = w + K5Qh, q = y + Q8_K_Qs;
            Vector256<int> isum = Avx2.Add(SubBlockPairK5<TM>(wv, hv, q, sc03, 0, 0, mask, one), SubBlockPairK5<TM>(wv + 256, hv, q + 64, sc03, 2, 1, mask, one));
            isum = Avx2.Add(isum, Avx2.Add(SubBlockPairK5<TM>(wv + 512, hv, q + 128, sc47, 0, 2, mask, one), SubBlockPairK5<TM>(wv + 768, hv, q + 192, sc47, 2, 3, mask, one)));
            MinsK4(w + K4Scales, out Vector256<byte> mn03, out Vector256<byte> mn47);
            acc = FinishK4(acc, w, y, isum, mn03, mn47);
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// <see cref="SubBlockPairK4"/> for Q5_K: sub-blocks 2j and 2j + 1, their fifth bits (bits 2j, 2j + 1 of the qh
    /// words at <paramref name="hv"/>) or'ed in. Quants up to 31 allow four words per int16 sum (see
    /// <see cref="Q5_Kx4"/>), so each half of the eight words is widened on its own.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SubBlockPairK5<TM>(byte* wv, byte* hv, byte* q, Vector256<byte> sc, int k, int j, Vector256<byte> mask, Vector256<byte> one)
        where TM : INibbleMultiply
    {
        Vector128<ushort> hLo = Vector128.CreateScalar((ushort)(2 * j)), hHi = Vector128.CreateScalar((ushort)(2 * j + 1));
        Vector256<int> scLo = KScales<TM>(sc, k), scHi = KScales<TM>(sc, k + 1);
        Vector256<int> lo0 = default, hi0 = default, lo1 = default, hi1 = default;
        NibblesK5<TM>(wv, hv, q, hLo, hHi, mask, one, ref lo0, ref hi0);
        NibblesK5<TM>(wv + 32, hv + 32, q + 4, hLo, hHi, mask, one, ref lo0, ref hi0);
        NibblesK5<TM>(wv + 64, hv + 64, q + 8, hLo, hHi, mask, one, ref lo0, ref hi0);
        NibblesK5<TM>(wv + 96, hv + 96, q + 12, hLo, hHi, mask, one, ref lo0, ref hi0);
        NibblesK5<TM>(wv + 128, hv + 128, q + 16, hLo, hHi, mask, one, ref lo1, ref hi1);
        NibblesK5<TM>(wv + 160, hv + 160, q + 20, hLo, hHi, mask, one, ref lo1, ref hi1);
        NibblesK5<TM>(wv + 192, hv + 192, q + 24, hLo, hHi, mask, one, ref lo1, ref hi1);
        NibblesK5<TM>(wv + 224, hv + 224, q + 28, hLo, hHi, mask, one, ref lo1, ref hi1);
        if (TM.Vnni) return Avx2.Add(KScale<TM>(Avx2.Add(lo0, lo1), scLo), KScale<TM>(Avx2.Add(hi0, hi1), scHi));
        return Avx2.Add(Avx2.Add(KScale<TM>(lo0, scLo), KScale<TM>(hi0, scHi)), Avx2.Add(KScale<TM>(lo1, scLo), KScale<TM>(hi1, scHi)));
    }

    /// <summary>One Q5_K quant word with its fifth bits: lo += low quants x the token's bytes at q, hi += high x those at q + 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NibblesK5<TM>(byte* wv, byte* hv, byte* q, Vector128<ushort> hLo, Vector128<ushort> hHi, Vector256<byte> mask,
        Vector256<byte> one, ref Vector256<int> lo, ref Vector256<int> hi) where TM : INibbleMultiply
    {
        // Both halves' fifth bits from one shift of the qh bytes: bit 2j of each byte to bit 0 (the low half's bit) and
        // bit 2j + 1 to bit 1 (the high half's), each then moved to bit 4 (see FifthBits for why 16-bit shifts do).
        Vector256<byte> v = Avx.LoadVector256(wv), bits = Avx2.ShiftRightLogical(Avx.LoadVector256(hv).AsUInt16(), hLo).AsByte();
        Vector256<byte> l = Avx2.Or(Avx2.And(v, mask), Avx2.ShiftLeftLogical(Avx2.And(bits, one).AsUInt16(), 4).AsByte());
        Vector256<byte> h = Avx2.Or(Avx2.And(Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte(), mask),
            Avx2.ShiftLeftLogical(Avx2.And(bits, Avx2.Add(one, one)).AsUInt16(), 3).AsByte());
        lo = KStep<TM>(lo, l, q);
        hi = KStep<TM>(hi, h, q + 32);
    }

    /// <summary>
    /// Offsets in a Q6_K group's super-block (see <see cref="InterleavedRows"/>): scales, the quants of word pair hs
    /// (K6Quants + 192 hs: ql, ql of the odd groups, qh; two vectors each), next block.
    /// </summary>
    internal const int K6Scales = 16, K6Quants = K6Scales + 4 * 32, K6Block = 8 * Q6_KBytes;

    /// <summary>
    /// vpshufb control: in each 32-bit lane, bytes <paramref name="b0"/> and <paramref name="b1"/> (0..3) of the same
    /// lane into the high bytes of its two int16 halves, zeros below (an arithmetic shift then sign-extends them).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> ToHighBytes(int b0, int b1)
        => (Vector256.Create(0x00800080u | (uint)b0 << 8 | (uint)b1 << 24) + (LaneBytes << 8)).AsByte();

    /// <summary>The eight rows' signed scale of sub-block <paramref name="k"/> (0..15), in both int16 halves of each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ScaleK6(byte* w, int k)
        => Avx2.ShiftRightArithmetic(Avx2.Shuffle(Avx.LoadVector256(w + K6Scales + 32 * (k >> 2)), ToHighBytes(k & 3, k & 3)).AsInt16(), 8);

    /// <summary>32 x the scales of sub-blocks 2i and 2i + 1 (|32 sc| ≤ 4096, an int16) in the two int16 halves of each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ScalePairTimes32K6(byte* w, int i)
        => Avx2.ShiftRightArithmetic(Avx2.Shuffle(Avx.LoadVector256(w + K6Scales + 32 * (i >> 1)), ToHighBytes(2 * (i & 1), 2 * (i & 1) + 1)).AsInt16(), 3);

    /// <summary>
    /// The unsigned 6-bit quants (0..63) of one word position s (elements 4s..4s+3 of each 32-element group) of half h,
    /// eight rows, for the four groups g = 0..3 at once: low bits from the ql word at <paramref name="p"/> (word
    /// 16h + s: groups 0 and 2, low and high nibbles) and at p + 64 (word 16h + 8 + s: groups 1 and 3), high bits
    /// 2g, 2g + 1 of the qh word at p + 128 (word 8h + s).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantsK6(byte* p, out Vector256<byte> g0, out Vector256<byte> g1, out Vector256<byte> g2, out Vector256<byte> g3)
    {
        Vector256<byte> nib = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        Vector256<ushort> l0 = Avx.LoadVector256((ushort*)p), l1 = Avx.LoadVector256((ushort*)(p + 64)), h = Avx.LoadVector256((ushort*)(p + 128));
        g0 = Avx2.Or(Avx2.And(l0.AsByte(), nib), Avx2.And(Avx2.ShiftLeftLogical(h, 4).AsByte(), top));
        g1 = Avx2.Or(Avx2.And(l1.AsByte(), nib), Avx2.And(Avx2.ShiftLeftLogical(h, 2).AsByte(), top));
        g2 = Avx2.Or(Avx2.And(Avx2.ShiftRightLogical(l0, 4).AsByte(), nib), Avx2.And(h.AsByte(), top));
        g3 = Avx2.Or(Avx2.And(Avx2.ShiftRightLogical(l1, 4).AsByte(), nib), Avx2.And(Avx2.ShiftRightLogical(h, 2).AsByte(), top));
    }

    /// <summary>
    /// Two quant words (eight elements) of a sub-block times a token's bytes, scaled: int32 lanes. The unsigned quants
    /// make a vpmaddubsw pair at most 2 x 63 x 128 = 16128, so two words sum to at most 32256 &lt; 32767 in int16 before
    /// vpmaddwd widens them (a sub-block's four words would not fit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> StepK6(Vector256<byte> qa, Vector256<byte> qb, byte* q, Vector256<short> sc)
        => Avx2.MultiplyAddAdjacent(Avx2.Add(Avx2.MultiplyAddAdjacent(qa, Broadcast4(q)), Avx2.MultiplyAddAdjacent(qb, Broadcast4(q + 4))), sc);

    /// <summary>
    /// The offset of 32 for sub-blocks 2i, 2i + 1: isum -= 32 sc · bsum (Q8_K's 16-element quant sums, a pair per lane).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> OffsetK6(Vector256<int> isum, Vector256<short> sc32, byte* y, int i)
        => Avx2.Subtract(isum, Avx2.MultiplyAddAdjacent(sc32, Vector256.Create(*(int*)(y + Q8_K_Bsums + 4 * i)).AsInt16()));

    /// <summary>acc = fma(dy · d, isum, acc) for eight rows (<see cref="VecDotScalar.Q6_K"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FinishK6(Vector256<float> acc, Vector256<float> dx, byte* y, Vector256<int> isum)
        => Fma.MultiplyAdd(Avx.Multiply(Vector256.Create(*(float*)y), dx), Avx.ConvertToVector256Single(isum), acc);

    /// <summary>
    /// Eight interleaved Q6_K rows x four tokens; see <see cref="Q8_0x4"/>. Two word positions at a time, each unpacked
    /// for the four groups of a half at once: the unsigned quants times the broadcast activation bytes, widened by the
    /// rows' sub-block scales; at the end of the super-block the quants' offset of 32 is subtracted through the
    /// activations' sums. All integer sums are exact (|Σ sc·q·y| ≤ 16·128·16·63·128 &lt; 2^29, the offset term
    /// ≤ 2^27), so the result is <see cref="VecDotScalar.Q6_K"/>'s.
    /// </summary>
    public static void Q6_Kx4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        int nb = n / QK_K;
        nint s1 = yStride, s2 = 2 * yStride, s3 = 3 * yStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int ib = 0; ib < nb; ib++, w += K6Block, y += Q8_KBytes)
        {
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int hs = 0; hs < 8; hs++) // half h = hs / 4, word positions s = 2 (hs % 4) and s + 1
            {
                int h = hs >> 2, s = 2 * (hs & 3), k = 8 * h + (s >> 2); // k: group 0's sub-block; group g's is k + 2g
                byte* p = w + K6Quants + 192 * hs, q = y + Q8_K_Qs + 128 * h + 4 * s;
                QuantsK6(p, out Vector256<byte> x0, out Vector256<byte> x1, out Vector256<byte> x2, out Vector256<byte> x3);
                QuantsK6(p + 32, out Vector256<byte> z0, out Vector256<byte> z1, out Vector256<byte> z2, out Vector256<byte> z3);
                Vector256<short> c0 = ScaleK6(w, k), c1 = ScaleK6(w, k + 2), c2 = ScaleK6(w, k + 4), c3 = ScaleK6(w, k + 6);
                i0 = Avx2.Add(i0, Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q));
                i1 = Avx2.Add(i1, Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s1));
                i2 = Avx2.Add(i2, Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s2));
                i3 = Avx2.Add(i3, Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3, c0, c1, c2, c3, q + s3));
            }
            for (int i = 0; i < 8; i++)
            {
                Vector256<short> sc32 = ScalePairTimes32K6(w, i);
                i0 = OffsetK6(i0, sc32, y, i);
                i1 = OffsetK6(i1, sc32, y + s1, i);
                i2 = OffsetK6(i2, sc32, y + s2, i);
                i3 = OffsetK6(i3, sc32, y + s3, i);
            }
            Vector256<float> dx = VecDotAvx2.HalfToSingle((ushort*)w);
            a0 = FinishK6(a0, dx, y, i0);
            a1 = FinishK6(a1, dx, y + s1, i1);
            a2 = FinishK6(a2, dx, y + s2, i2);
            a3 = FinishK6(a3, dx, y + s3, i3);
        }
        Store4(output, outStride, a0, a1, a2, a3);
    }

    /// <summary>
    /// Two word positions of the four groups of a half (quants x*, then z*) times a token's bytes at <paramref name="q"/>
    /// (group g's at q + 32g), each group scaled by its sub-block's scale c*: int32 lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Groups4K6(Vector256<byte> x0, Vector256<byte> x1, Vector256<byte> x2, Vector256<byte> x3,
        Vector256<byte> z0, Vector256<byte> z1, Vector256<byte> z2, Vector256<byte> z3,
        Vector256<short> c0, Vector256<short> c1, Vector256<short> c2, Vector256<short> c3, byte* q)
        => Avx2.Add(Avx2.Add(StepK6(x0, z0, q, c0), StepK6(x1, z1, q + 32, c1)), Avx2.Add(StepK6(x2, z2, q + 64, c2), StepK6(x3, z3, q + 96, c3)));

    /// <summary>
    /// Eight interleaved Q6_K rows x one token; see <see cref="Q6_Kx4"/>. The eight word pairs and the eight offset
    /// terms are written out (<see cref="WordPairK6"/>), so every scale's shuffle control is a constant instead of
    /// being built at run time from the loop counter. In the A/B of <see cref="Q4_Kx1"/> (90 MB of Q6_K): 1.13-1.27x
    /// against the loop, single-threaded and on a 2-thread pool; the loop ran at about half the memory rate.
    /// </summary>
    public static void Q6_Kx1(byte* w, byte* y, int n, float* output)
    {
        int nb = n / QK_K;
        Vector256<float> acc = default;
        for (int ib = 0; ib < nb; ib++, w += K6Block, y += Q8_KBytes)
        {
            Vector256<int> isum = Avx2.Add(Avx2.Add(WordPairK6(w, y, 0), WordPairK6(w, y, 1)), Avx2.Add(WordPairK6(w, y, 2), WordPairK6(w, y, 3)));
            isum = Avx2.Add(isum, Avx2.Add(Avx2.Add(WordPairK6(w, y, 4), WordPairK6(w, y, 5)), Avx2.Add(WordPairK6(w, y, 6), WordPairK6(w, y, 7))));
            acc = FinishSuperBlockK6(acc, w, y, isum);
        }
        Avx.Store(output, acc);
    }

    /// <summary>
    /// A one-token Q6_K super-block's end: the quants' offset of 32 through the token's sums for the eight sub-block
    /// pairs, written out so each scale's shuffle control is a constant, then the float step (<see cref="FinishK6"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FinishSuperBlockK6(Vector256<float> acc, byte* w, byte* y, Vector256<int> isum)
    {
        isum = OffsetK6(OffsetK6(OffsetK6(OffsetK6(isum, ScalePairTimes32K6(w, 0), y, 0), ScalePairTimes32K6(w, 1), y, 1), ScalePairTimes32K6(w, 2), y, 2), ScalePairTimes32K6(w, 3), y, 3);
        isum = OffsetK6(OffsetK6(OffsetK6(OffsetK6(isum, ScalePairTimes32K6(w, 4), y, 4), ScalePairTimes32K6(w, 5), y, 5), ScalePairTimes32K6(w, 6), y, 6), ScalePairTimes32K6(w, 7), y, 7);
        return FinishK6(acc, VecDotAvx2.HalfToSingle((ushort*)w), y, isum);
    }

    /// <summary>
    /// Word pair <paramref name="hs"/> (half hs / 4, word positions 2 (hs % 4) and the next) of a Q6_K group's
    /// super-block at <paramref name="w"/>, its four groups scaled, times one token (Q8_K block at
    /// <paramref name="y"/>): int32 lanes, the offset of 32 not yet subtracted.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> WordPairK6(byte* w, byte* y, int hs)
    {
        int h = hs >> 2, s = 2 * (hs & 3), k = 8 * h + (s >> 2); // k: group 0's sub-block; group g's is k + 2g
        byte* p = w + K6Quants + 192 * hs;
        QuantsK6(p, out Vector256<byte> x0, out Vector256<byte> x1, out Vector256<byte> x2, out Vector256<byte> x3);
        QuantsK6(p + 32, out Vector256<byte> z0, out Vector256<byte> z1, out Vector256<byte> z2, out Vector256<byte> z3);
        return Groups4K6(x0, x1, x2, x3, z0, z1, z2, z3,
            ScaleK6(w, k), ScaleK6(w, k + 2), ScaleK6(w, k + 4), ScaleK6(w, k + 6), y + Q8_K_Qs + 128 * h + 4 * s);
    }

    /// <summary>
    /// Eight interleaved F32 rows x four tokens. Per row and token two FMA chains, even and odd columns, added at the
    /// end (<see cref="VecDotScalar.DotF32"/>'s order): two chains hide FMA latency when one token runs alone, and
    /// four tokens x two chains are eight accumulators, what the registers hold beside a weight load and a broadcast.
    /// Prefill takes groups three at a time (<see cref="F32Groups3x2"/>); this runs the groups past the last triple.
    /// </summary>
    public static void F32x4(byte* w, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        float* wf = (float*)w, y0 = (float*)y, y1 = (float*)(y + yStride), y2 = (float*)(y + 2 * yStride), y3 = (float*)(y + 3 * yStride);
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, wf += 16)
        {
            Vector256<float> we = Avx.LoadVector256(wf), wo = Avx.LoadVector256(wf + 8);
            a0 = Fma.MultiplyAdd(we, Vector256.Create(y0[c]), a0);
            b0 = Fma.MultiplyAdd(wo, Vector256.Create(y0[c + 1]), b0);
            a1 = Fma.MultiplyAdd(we, Vector256.Create(y1[c]), a1);
            b1 = Fma.MultiplyAdd(wo, Vector256.Create(y1[c + 1]), b1);
            a2 = Fma.MultiplyAdd(we, Vector256.Create(y2[c]), a2);
            b2 = Fma.MultiplyAdd(wo, Vector256.Create(y2[c + 1]), b2);
            a3 = Fma.MultiplyAdd(we, Vector256.Create(y3[c]), a3);
            b3 = Fma.MultiplyAdd(wo, Vector256.Create(y3[c + 1]), b3);
        }
        if (c < n)
        {
            Vector256<float> we = Avx.LoadVector256(wf);
            a0 = Fma.MultiplyAdd(we, Vector256.Create(y0[c]), a0);
            a1 = Fma.MultiplyAdd(we, Vector256.Create(y1[c]), a1);
            a2 = Fma.MultiplyAdd(we, Vector256.Create(y2[c]), a2);
            a3 = Fma.MultiplyAdd(we, Vector256.Create(y3[c]), a3);
        }
        Store4(output, outStride, Avx.Add(a0, b0), Avx.Add(a1, b1), Avx.Add(a2, b2), Avx.Add(a3, b3));
    }

    /// <summary>
    /// Three consecutive F32 groups (24 rows, <paramref name="groupBytes"/> apart) x two tokens, each group and token
    /// exactly as <see cref="F32x4"/> (same two chains, same bits). F32x4 loads ten times (two weight vectors, eight
    /// broadcasts) per eight FMAs and so waits on loads; here each weight vector serves two tokens and each broadcast
    /// three groups, ten loads per twelve FMAs, and the twelve accumulators, a weight and two broadcasts still fit the
    /// sixteen vector registers of an AVX2-only CPU (Tier1 there: fifteen registers, no spills, no calls).
    /// Interleaved in-process A/B on Zen 4, one thread, 41 rounds, 128 tokens in MatMul's tiles of eight, F32x4 over
    /// this (triples of groups, the rest by F32x4), median ratio for 768x768, 2048x768, 768x2048: 1.20, 1.23, 1.22 with
    /// DOTNET_EnableAVX512=0 (sixteen registers), 1.17, 1.20, 1.21 with AVX-512 present (32 registers); same bits.
    /// </summary>
    public static void F32Groups3x2(byte* w, nint groupBytes, byte* y, nint yStride, int n, float* output, nint outStride)
    {
        float* w0 = (float*)w, w1 = (float*)(w + groupBytes), w2 = (float*)(w + 2 * groupBytes);
        float* y0 = (float*)y, y1 = (float*)(y + yStride);
        Vector256<float> a00 = default, b00 = default, a10 = default, b10 = default, a20 = default, b20 = default;
        Vector256<float> a01 = default, b01 = default, a11 = default, b11 = default, a21 = default, b21 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2)
        {
            nint o = (nint)c * 8;
            Column3x2(w0 + o, w1 + o, w2 + o, y0 + c, y1 + c, ref a00, ref a01, ref a10, ref a11, ref a20, ref a21);
            Column3x2(w0 + o + 8, w1 + o + 8, w2 + o + 8, y0 + c + 1, y1 + c + 1, ref b00, ref b01, ref b10, ref b11, ref b20, ref b21);
        }
        if (c < n)
        {
            nint o = (nint)c * 8;
            Column3x2(w0 + o, w1 + o, w2 + o, y0 + c, y1 + c, ref a00, ref a01, ref a10, ref a11, ref a20, ref a21);
        }
        Avx.Store(output, Avx.Add(a00, b00));
        Avx.Store(output + 8, Avx.Add(a10, b10));
        Avx.Store(output + 16, Avx.Add(a20, b20));
        Avx.Store(output + outStride, Avx.Add(a01, b01));
        Avx.Store(output + outStride + 8, Avx.Add(a11, b11));
        Avx.Store(output + outStride + 16, Avx.Add(a21, b21));
    }

    /// <summary>
    /// One column of three groups times two tokens' activations into their chains; the activations come by pointer
    /// because values passed in took a scalar move plus a register broadcast where a broadcast load does (about 5% slower).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column3x2(float* w0, float* w1, float* w2, float* x0, float* x1,
        ref Vector256<float> s00, ref Vector256<float> s01, ref Vector256<float> s10, ref Vector256<float> s11, ref Vector256<float> s20, ref Vector256<float> s21)
    {
        Vector256<float> e0 = Vector256.Create(*x0), e1 = Vector256.Create(*x1);
        Vector256<float> wv = Avx.LoadVector256(w0);
        s00 = Fma.MultiplyAdd(wv, e0, s00);
        s01 = Fma.MultiplyAdd(wv, e1, s01);
        wv = Avx.LoadVector256(w1);
        s10 = Fma.MultiplyAdd(wv, e0, s10);
        s11 = Fma.MultiplyAdd(wv, e1, s11);
        wv = Avx.LoadVector256(w2);
        s20 = Fma.MultiplyAdd(wv, e0, s20);
        s21 = Fma.MultiplyAdd(wv, e1, s21);
    }

    /// <summary>Eight interleaved F32 rows x one token; see <see cref="F32x4"/>.</summary>
    public static void F32x1(byte* w, byte* y, int n, float* output)
    {
        float* wf = (float*)w, yf = (float*)y;
        Vector256<float> a = default, b = default;
        int c = 0;
        for (; c + 2 <= n; c += 2, wf += 16)
        {
            a = Fma.MultiplyAdd(Avx.LoadVector256(wf), Vector256.Create(yf[c]), a);
            b = Fma.MultiplyAdd(Avx.LoadVector256(wf + 8), Vector256.Create(yf[c + 1]), b);
        }
        if (c < n) a = Fma.MultiplyAdd(Avx.LoadVector256(wf), Vector256.Create(yf[c]), a);
        Avx.Store(output, Avx.Add(a, b));
    }

    /// <summary>
    /// Four consecutive F32 groups (32 rows, <paramref name="groupBytes"/> apart) x one token, each group exactly as
    /// <see cref="F32x1"/>. A lone group's two FMA chains wait on FMA latency every column; four groups give eight
    /// independent chains, so decode streams the weights instead of waiting on the adder.
    /// </summary>
    public static void F32x1Groups4(byte* w, nint groupBytes, byte* y, int n, float* output)
    {
        float* w0 = (float*)w, w1 = (float*)(w + groupBytes), w2 = (float*)(w + 2 * groupBytes), w3 = (float*)(w + 3 * groupBytes);
        float* yf = (float*)y;
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int c = 0;
        for (; c + 2 <= n; c += 2)
        {
            Vector256<float> ye = Vector256.Create(yf[c]), yo = Vector256.Create(yf[c + 1]);
            nint o = (nint)c * 8;
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o), ye, a0);
            b0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o + 8), yo, b0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o), ye, a1);
            b1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o + 8), yo, b1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o), ye, a2);
            b2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o + 8), yo, b2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o), ye, a3);
            b3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o + 8), yo, b3);
        }
        if (c < n)
        {
            Vector256<float> ye = Vector256.Create(yf[c]);
            nint o = (nint)c * 8;
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + o), ye, a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + o), ye, a1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + o), ye, a2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + o), ye, a3);
        }
        Store4(output, 8, Avx.Add(a0, b0), Avx.Add(a1, b1), Avx.Add(a2, b2), Avx.Add(a3, b3));
    }
}
