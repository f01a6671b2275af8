using System.Runtime.CompilerServices;

namespace KvSharp.Tensors;

/// <summary>
/// y = x · Wᵀ for a quantized weight matrix: y[t, r] = dot(W row r, x row t), with each x row first converted to the
/// weight's vec_dot type (Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32) exactly as llama.cpp's CPU backend does.
/// </summary>
/// <remarks>
/// <para><b>Batch invariance.</b> Every output is produced by one call of the same vec_dot kernel on (W row r,
/// quantized x row t); x rows are quantized independently. Tiling and threading only decide which thread computes
/// which outputs and in which order, never how one output is summed. So y[t, r] is bit-identical whatever nTokens
/// is, whatever the other rows of x are and whatever the thread count: prefill and decode agree exactly.</para>
/// <para><b>Tiling.</b> A work item is a tile of <see cref="RowTile(int)"/> weight rows over all tokens. Inside it the tokens
/// go in chunks of <see cref="TokenTile"/> (their converted rows stay in L1) and for each chunk the tile's rows are
/// swept, so the tile's weights (tens of KiB) come from memory once and are then reused from L2 for every chunk; one
/// thread owns a row tile, so the two cores never both pull the same weights. A one-token product instead gives each
/// thread one contiguous share of the rows (<see cref="RowTile(int, int)"/>).</para>
/// <para><b>Kernels.</b> Besides the single-token kernel, multi-output kernels compute several outputs at once where
/// they exist: eight interleaved rows by four tokens or one (Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K,
/// F32 with <see cref="WeightMatrix.Interleaved"/>; Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_1, Q5_0 and Q5_1 also by eight tokens,
/// sharing each weight load eight ways), four tokens per weight row (IQ4_XS, Q2_K, Q3_K), two rows by four tokens (F16); on
/// <see cref="KernelPath.Avx512"/>, sixteen interleaved rows (two groups) at a time (Q8_0, the nibble types, IQ4_NL and MXFP4 by one, four
/// or eight tokens; Q4_K, Q5_K and Q6_K by four; F32 by four or eight). <see cref="KernelPaths"/> picks each matrix's
/// path once per call, by weight type and token count.
/// Each returns, per output,
/// exactly the single-token kernel's bits, so how outputs are grouped never breaks the invariance. On AVX2 some
/// activation rows carry precomputed extras (<see cref="ActivationRowBytes"/>). Matrices too small to be worth a
/// thread hand-off run on the calling thread alone.</para>
/// <para>The quantized activations live in scratch the instance owns and grows; once warm a call allocates nothing.
/// An instance is not thread-safe (one call at a time), like the <see cref="KernelPool"/> it runs on.</para>
/// </remarks>
public sealed unsafe class MatMul
{
    /// <summary>Tokens per tile: the weight rows of a tile are reused this many times from cache.</summary>
    internal const int TokenTile = 8;

    /// <summary>Below this many multiply-adds a matmul runs on the calling thread: waking workers would cost more.</summary>
    internal const long InlineWork = 1 << 15;

    private readonly KernelPool _pool;
    private byte[] _scratch = [];

    public MatMul(KernelPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        _pool = pool;
    }

    public KernelPool Pool => _pool;

    /// <summary>
    /// Rows per work item for a product over <paramref name="nTokens"/> tokens: for one token (decode), one contiguous
    /// share per thread; otherwise <see cref="RowTile(int)"/>.
    /// </summary>
    /// <remarks>
    /// A one-token product reads each weight once, so there is no tile to keep in L2, and tiles claimed in turn made
    /// the two threads stream alternate 30-50 KB stretches of the same pages: each core's hardware prefetcher runs on
    /// into the stretch the other core reads. In-process A/B on the shared 2-core Zen 4, weights on huge pages
    /// (<see cref="HugePageSlabs"/>), the `small` model's matrices by the one-token kernels, two threads, 150 rounds:
    /// contiguous halves 1.48x (Q8_0) and 1.72x (Q4_0) the 64-row tiles, 1.13x and 1.70x as VEX code with 16
    /// registers; decode of the `small` model alternating the two splits in one process: Q8_0 1.45-1.53x, Q4_0
    /// 1.01-1.41x (medians of runs; it never lost). On 4 KiB pages the split made no difference (0.94-1.06x).
    /// </remarks>
    internal int RowTile(int rows, int nTokens)
        => nTokens == 1 ? (rows + _pool.Threads - 1) / _pool.Threads : RowTile(rows);

    /// <summary>Rows per work item for a matrix: enough items to balance the threads, but each worth a few µs.</summary>
    internal int RowTile(int rows)
    {
        int items = 4 * _pool.Threads;
        int perItem = (rows + items - 1) / items;
        return Math.Clamp(perItem, 4, 64);
    }

    /// <summary>
    /// x: row-major [nTokens, w.Cols]; y: row-major [nTokens, w.Rows]. Only the first nTokens rows of each are used.
    /// </summary>
    public void Multiply(in WeightMatrix w, ReadOnlySpan<float> x, int nTokens, Span<float> y)
        => MultiplyShared(1, w, y, default, default, default, default, x, nTokens);

    /// <summary>
    /// Two matrices applied to the same input (e.g. ffn gate and up): y_a = x·Aᵀ, y_b = x·Bᵀ, with x quantized once per
    /// activation type and both products in one parallel-for. Each output is bit-identical to a separate
    /// <see cref="Multiply(in WeightMatrix, ReadOnlySpan{float}, int, Span{float})"/>.
    /// </summary>
    public void Multiply(in WeightMatrix a, Span<float> ya, in WeightMatrix b, Span<float> yb, ReadOnlySpan<float> x, int nTokens)
        => MultiplyShared(2, a, ya, b, yb, default, default, x, nTokens);

    /// <summary>Three matrices applied to the same input (e.g. attention q, k, v); see the two-matrix overload.</summary>
    public void Multiply(in WeightMatrix a, Span<float> ya, in WeightMatrix b, Span<float> yb, in WeightMatrix c, Span<float> yc,
        ReadOnlySpan<float> x, int nTokens)
        => MultiplyShared(3, a, ya, b, yb, c, yc, x, nTokens);

    private void MultiplyShared(int count, in WeightMatrix w0, Span<float> y0, in WeightMatrix w1, Span<float> y1,
        in WeightMatrix w2, Span<float> y2, ReadOnlySpan<float> x, int nTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nTokens);
        int cols = w0.Cols;
        Check(w0, x, nTokens, y0, cols, "a");
        if (count > 1) Check(w1, x, nTokens, y1, cols, "b");
        if (count > 2) Check(w2, x, nTokens, y2, cols, "c");
        if (nTokens == 0) return;

        // One quantized copy of x per distinct activation type (a Q4_K_M layer can mix Q4_K and Q6_K: both Q8_K).
        GgmlType t0 = GgmlTypes.VecDotType(w0.Type);
        GgmlType t1 = count > 1 ? GgmlTypes.VecDotType(w1.Type) : t0;
        GgmlType t2 = count > 2 ? GgmlTypes.VecDotType(w2.Type) : t0;
        // Read once: a call must not mix kernels and activation layouts if tests flip the switch meanwhile.
        KernelPath? requested = KernelPaths.Requested;
        bool avx2 = VecDot.IsAvx2Supported && requested != KernelPath.Scalar;
        int r0 = ActivationRowBytes(t0, cols, avx2), r1 = ActivationRowBytes(t1, cols, avx2), r2 = ActivationRowBytes(t2, cols, avx2);
        long off1 = t1 == t0 ? 0 : (long)r0 * nTokens;
        long off2 = t2 == t0 ? 0 : t2 == t1 ? off1 : off1 + (t1 == t0 ? (long)r0 * nTokens : (long)r1 * nTokens);
        long need = Math.Max(Math.Max((long)r0 * nTokens, off1 + (long)r1 * nTokens), off2 + (long)r2 * nTokens);
        if (_scratch.Length < need + 64)
            _scratch = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(need + 64, _scratch.Length * 2L)), pinned: true);

        long work = (long)w0.Rows * cols + (count > 1 ? (long)w1.Rows * cols : 0) + (count > 2 ? (long)w2.Rows * cols : 0);
        bool inline = work * nTokens < InlineWork;

        fixed (float* px = x)
        fixed (float* py0 = y0)
        fixed (float* py1 = y1)
        fixed (float* py2 = y2)
        fixed (byte* scratch = _scratch)
        {
            byte* act = (byte*)(((nint)scratch + 63) & ~(nint)63);
            // F16 on the AVX2 paths reads its activation rows scaled up by 2^112 (VecDotAvx2F16.DotScaled).
            bool scaledF16 = avx2 && (t0 == GgmlType.F16 || t1 == GgmlType.F16 || t2 == GgmlType.F16)
                && KernelPaths.For(GgmlType.F16, requested, nTokens) != KernelPath.Avx512;
            var quant = new QuantizeWork { X = px, Cols = cols, NTokens = nTokens, Types = 1, WithExtras = avx2, ScaledF16 = scaledF16 };
            quant.Set(0, t0, act, r0);
            if (t1 != t0) quant.Set(quant.Types++, t1, act + off1, r1);
            if (t2 != t0 && t2 != t1) quant.Set(quant.Types++, t2, act + off2, r2);
            _pool.Run(ref quant, nTokens * quant.Types, inline);

            var dot = new DotWork();
            dot.Jobs[0] = Job(w0, act, r0, py0, nTokens, 0, KernelPaths.For(w0.Type, requested, nTokens));
            if (count > 1) dot.Jobs[1] = Job(w1, act + off1, r1, py1, nTokens, dot.Jobs[0].End, KernelPaths.For(w1.Type, requested, nTokens));
            if (count > 2) dot.Jobs[2] = Job(w2, act + off2, r2, py2, nTokens, dot.Jobs[1].End, KernelPaths.For(w2.Type, requested, nTokens));
            dot.Count = count;
            _pool.Run(ref dot, dot.Jobs[count - 1].End, inline);
        }
    }

    /// <summary>
    /// Bytes of one converted activation row: the vec_dot row; with the AVX2 kernels a Q8_0 or Q8_1 row is followed by
    /// the extras of <see cref="VecDotAvx2Interleaved"/> (float scales, quant sums) that the interleaved kernels read, and an
    /// F16 row is held widened to floats (<see cref="VecDotAvx2F16"/>).
    /// </summary>
    private static int ActivationRowBytes(GgmlType type, int cols, bool avx2)
    {
        long bytes = GgmlTypes.RowBytes(type, cols);
        if (type is GgmlType.Q8_0 or GgmlType.Q8_1 && avx2) bytes += VecDotAvx2Interleaved.ExtraBytes(cols / BlockLayouts.QK);
        if (type == GgmlType.F16 && avx2) bytes = VecDotAvx2F16.RowBytes(cols);
        return checked((int)bytes);
    }

    private static void Check(in WeightMatrix w, ReadOnlySpan<float> x, int nTokens, Span<float> y, int cols, string which)
    {
        if (w.Cols != cols)
            throw new ArgumentException($"MatMul: matrix {which} has {w.Cols} columns, the first matrix {cols}; matrices sharing an input must agree");
        if (x.Length < (long)nTokens * cols)
            throw new ArgumentException($"MatMul: x has {x.Length} floats, {nTokens} tokens x {cols} columns need {(long)nTokens * cols}", nameof(x));
        if (y.Length < (long)nTokens * w.Rows)
            throw new ArgumentException($"MatMul: output {which} has {y.Length} floats, {nTokens} tokens x {w.Rows} rows need {(long)nTokens * w.Rows}", nameof(y));
    }

    private MatJob Job(in WeightMatrix w, byte* act, int actRowBytes, float* y, int nTokens, int start, KernelPath path)
    {
        bool avx2 = path != KernelPath.Scalar, vnni = path == KernelPath.Avx2Vnni, avx512 = path == KernelPath.Avx512;
        var interleaved = avx2 ? w.Interleaved : null;
        bool pairs = avx512 && interleaved != null;
        // Row tiles of whole groups; on AVX-512 of whole pairs of groups, which its kernels take sixteen rows at a time;
        // F32 prefill on AVX2 of whole triples, which its kernel takes two tokens at a time.
        bool triples = !pairs && interleaved != null && w.Type == GgmlType.F32 && nTokens > 1;
        // A copy whose pairs of groups are one stream (InterleavedRows.PairedGroups) is cut into whole pairs on every path.
        bool paired = interleaved is { PairedGroups: true };
        int rowTile = RowTile(w.Rows, nTokens);
        // F16 and BF16 widened (WidenedRows): an item's widened rows stay in L2 beside the other thread's.
        if (avx2 && w.Type is GgmlType.F16 or GgmlType.BF16 && nTokens >= 4) rowTile = Math.Min(rowTile, avx512 ? WidenedRows.RowTileAvx512 : WidenedRows.RowTileAvx2);
        int unit = InterleavedRows.RowsPerGroup * (pairs || paired ? 2 : triples ? 3 : 1);
        if (interleaved != null) rowTile = (rowTile + unit - 1) / unit * unit;
        int rowTiles = (w.Rows + rowTile - 1) / rowTile;
        delegate*<byte*, nint, byte*, nint, int, float*, nint, void> pair1 = null, pair4 = null, pair8 = null;
        if (pairs) VecDotAvx512Interleaved.Kernels(w.Type, paired, out pair1, out pair4, out pair8);
        delegate*<byte*, byte*, int, float*, void> nibble1 = null, first1 = null, second1 = null;
        delegate*<byte*, byte*, nint, int, float*, nint, void> nibble4 = null, nibble8 = null, first4 = null, first8 = null, second4 = null, second8 = null;
        if (interleaved != null && VecDotAvx2Interleaved.IsNibbleType(w.Type))
            VecDotAvx2Interleaved.NibbleKernels(w.Type, vnni, out nibble1, out nibble4, out nibble8);
        else if (interleaved != null && VecDotAvx2Interleaved.IsLevelType(w.Type))
            VecDotAvx2Interleaved.LevelKernels(w.Type, vnni, out nibble1, out nibble4, out nibble8);
        if (paired && !pairs)
        {
            VecDotAvx2Interleaved.PairedNibbleKernels(w.Type, vnni, second: false, out first1, out first4, out first8);
            VecDotAvx2Interleaved.PairedNibbleKernels(w.Type, vnni, second: true, out second1, out second4, out second8);
        }
        return new MatJob
        {
            First1 = first1,
            First4 = first4,
            First8 = first8,
            Second1 = second1,
            Second4 = second4,
            Second8 = second8,
            PairedGroupCount = paired ? interleaved!.Groups & ~1 : 0,
            Pair1 = pair1,
            Pair4 = pair4,
            Pair8 = pair8,
            Kernel = avx2 && w.Type == GgmlType.F16 ? avx512 ? &VecDotAvx512F16.Dot : &VecDotAvx2F16.DotScaled : VecDot.Kernel(w.Type, avx2),
            Kernel4 = VecDot.Kernel4(w.Type, avx2),
            Widened = !avx2 ? null : (w.Type, avx512) switch
            {
                (GgmlType.F16, true) => &VecDotAvx512Widened.Dot4x4F16,
                (GgmlType.BF16, true) => &VecDotAvx512Widened.Dot4x4BF16,
                (GgmlType.F16, false) => &VecDotAvx2Widened.Dot3x4F16,
                (GgmlType.BF16, false) => &VecDotAvx2Widened.Dot3x4BF16,
                _ => null,
            },
            WidenedRowsPerCall = avx512 ? 4 : 3,
            WidenedBF16 = w.Type == GgmlType.BF16,
            WidenedScaledDown = w.Type == GgmlType.F16 && avx2 && !avx512,
            Group4 = interleaved == null ? null : nibble4 != null ? nibble4 : w.Type switch
            {
                GgmlType.Q8_0 => vnni ? &VecDotAvx2Interleaved.Q8_0x4Vnni : &VecDotAvx2Interleaved.Q8_0x4,
                GgmlType.Q4_K => &VecDotAvx2Interleaved.Q4_Kx4,
                GgmlType.Q5_K => &VecDotAvx2Interleaved.Q5_Kx4,
                GgmlType.Q6_K => &VecDotAvx2Interleaved.Q6_Kx4,
                _ => &VecDotAvx2Interleaved.F32x4,
            },
            Group8 = interleaved == null ? null : nibble8 != null ? nibble8 : w.Type switch
            {
                GgmlType.Q8_0 => vnni ? &VecDotAvx2Interleaved.Q8_0x8Vnni : &VecDotAvx2Interleaved.Q8_0x8,
                _ => null,
            },
            Group1 = interleaved == null ? null : nibble1 != null ? nibble1 : w.Type switch
            {
                GgmlType.Q8_0 => vnni ? &VecDotAvx2Interleaved.Q8_0x1Vnni : &VecDotAvx2Interleaved.Q8_0x1,
                GgmlType.Q4_K => vnni ? &VecDotAvx2Interleaved.Q4_Kx1Vnni : &VecDotAvx2Interleaved.Q4_Kx1,
                GgmlType.Q5_K => vnni ? &VecDotAvx2Interleaved.Q5_Kx1Vnni : &VecDotAvx2Interleaved.Q5_Kx1,
                GgmlType.Q6_K => vnni ? &VecDotAvx2Interleaved.Q6_Kx1Vnni : &VecDotAvx2Interleaved.Q6_Kx1,
                _ => &VecDotAvx2Interleaved.F32x1,
            },
            Group1x4 = interleaved != null && w.Type == GgmlType.F32 ? &VecDotAvx2Interleaved.F32x1Groups4 : null,
            Triple2 = triples ? &VecDotAvx2Interleaved.F32Groups3x2 : null,
            Groups = interleaved?.Groups ?? 0,
            GroupBytes = interleaved?.GroupBytes ?? 0,
            Packed = interleaved == null ? null : interleaved.Data,
            W = w.Data,
            WRowBytes = w.RowBytes,
            Rows = w.Rows,
            Cols = w.Cols,
            Act = act,
            ActRowBytes = actRowBytes,
            Y = y,
            NTokens = nTokens,
            RowTile = rowTile,
            Start = start,
            End = start + (w.Rows == 0 ? 0 : rowTiles),
        };
    }

    [InlineArray(3)]
    private struct Three<T> { private T _e; }

    private struct QuantizeWork : IParallelWork
    {
        public float* X;
        public int Cols, NTokens, Types;
        public bool WithExtras, ScaledF16;
        public Three<GgmlType> Type;
        public Three<nint> Act;
        public Three<int> ActRowBytes;

        public void Set(int i, GgmlType type, byte* act, int rowBytes)
        {
            Type[i] = type;
            Act[i] = (nint)act;
            ActRowBytes[i] = rowBytes;
        }

        public void Execute(int index)
        {
            int k = index / NTokens, t = index % NTokens;
            byte* row = (byte*)Act[k] + (long)t * ActRowBytes[k];
            if (WithExtras && Type[k] == GgmlType.F16)
            {
                VecDotAvx2F16.Widen(new ReadOnlySpan<float>(X + (long)t * Cols, Cols), row, ScaledF16);
                return;
            }
            Quantize.Row(Type[k], new ReadOnlySpan<float>(X + (long)t * Cols, Cols), new Span<byte>(row, ActRowBytes[k]));
            if (WithExtras && Type[k] == GgmlType.Q8_0) VecDotAvx2Interleaved.AppendExtras(row, Cols / BlockLayouts.QK);
            if (WithExtras && Type[k] == GgmlType.Q8_1) VecDotAvx2Interleaved.AppendExtrasQ8_1(row, Cols / BlockLayouts.QK);
        }
    }

    /// <summary>One matrix of a (possibly shared-input) matmul: its work items are [Start, End).</summary>
    private struct MatJob
    {
        public delegate*<byte*, byte*, int, float> Kernel;
        public delegate*<byte*, byte*, nint, int, float*, void> Kernel4;
        // F16 and BF16 over several tokens: a work item's rows are widened once, then four rows (AVX-512:
        // VecDotAvx512Widened) or three (AVX2: VecDotAvx2Widened) meet four tokens.
        public delegate*<float*, int, byte*, nint, int, float*, void> Widened;
        public int WidenedRowsPerCall;
        public bool WidenedBF16, WidenedScaledDown;
        public delegate*<byte*, byte*, nint, int, float*, nint, void> Group4;
        public delegate*<byte*, byte*, nint, int, float*, nint, void> Group8;
        public delegate*<byte*, byte*, int, float*, void> Group1;
        public delegate*<byte*, nint, byte*, int, float*, void> Group1x4;
        public delegate*<byte*, nint, byte*, nint, int, float*, nint, void> Triple2;
        public delegate*<byte*, nint, byte*, nint, int, float*, nint, void> Pair1, Pair4, Pair8;
        // A paired copy off the AVX-512 path: each half of a pair runs its own group kernels on the pair's bytes.
        public delegate*<byte*, byte*, int, float*, void> First1, Second1;
        public delegate*<byte*, byte*, nint, int, float*, nint, void> First4, First8, Second4, Second8;
        public int PairedGroupCount; // groups [0, this) lie in pairs (a lone last group does not)
        public byte* Packed;
        public int Groups, GroupBytes;
        public byte* W;
        public int WRowBytes, Rows, Cols;
        public byte* Act;
        public int ActRowBytes;
        public float* Y;
        public int NTokens, RowTile, Start, End;

        public readonly void Execute(int item)
        {
            int r0 = item * RowTile, r1 = Math.Min(Rows, r0 + RowTile);
            var kernel = Kernel;
            var kernel4 = Kernel4;
            float* results = stackalloc float[16];
            // F16 and BF16 over several tokens: the item's rows widened once for all its tokens, taken in fours or threes.
            var widenedKernel = Widened;
            int per = WidenedRowsPerCall, widenedRows = widenedKernel != null && NTokens >= 4 ? (r1 - r0) / per * per : 0;
            int widenedStride = WidenedRows.Stride(Cols);
            float* widened = widenedRows > 0 ? WidenedRows.Widen(W + (long)r0 * WRowBytes, WRowBytes, widenedRows, Cols, WidenedBF16, WidenedScaledDown) : null;
            for (int t0 = 0; t0 < NTokens; t0 += TokenTile)
            {
                int t1 = Math.Min(NTokens, t0 + TokenTile);
                int r = r0;
                // Widened rows by four tokens where such kernels exist, then rows one at a time; every kernel gives the
                // single-token kernel's bits, so how outputs are grouped never changes one.
                for (; r < r0 + widenedRows; r += per)
                {
                    float* wq = widened + (long)(r - r0) * widenedStride;
                    int t = t0;
                    for (; t + 4 <= t1; t += 4)
                    {
                        widenedKernel(wq, widenedStride, Act + (long)t * ActRowBytes, ActRowBytes, Cols, results);
                        for (int k = 0; k < 4 * per; k++) Y[(long)(t + (k & 3)) * Rows + r + (k >> 2)] = results[k];
                    }
                    for (; t < t1; t++)
                        for (int k = 0; k < per; k++)
                            Y[(long)t * Rows + r + k] = kernel(W + (long)(r + k) * WRowBytes, Act + (long)t * ActRowBytes, Cols);
                }
                // Interleaved matrices: eight rows at a time, eight tokens (Q8_0, Q4_0), four or one; rows past the last
                // group fall through.
                if (Group1 != null)
                {
                    const int G = InterleavedRows.RowsPerGroup;
                    int end = Math.Min(r1, Groups * G);
                    // One token (decode): four groups at once where that kernel exists, for independent FMA chains.
                    if (Group1x4 != null && t1 - t0 == 1)
                        for (; r + 4 * G <= end; r += 4 * G)
                            Group1x4(Packed + (long)(r / G) * GroupBytes, GroupBytes, Act + (long)t0 * ActRowBytes, Cols, Y + (long)t0 * Rows + r);
                    // F32 on AVX2: three groups (24 rows) at a time, two tokens; an odd last token and the groups past
                    // the last triple go on.
                    if (Triple2 != null)
                    {
                        for (; r + 3 * G <= end; r += 3 * G)
                        {
                            byte* g = Packed + (long)(r / G) * GroupBytes;
                            int t = t0;
                            for (; t + 2 <= t1; t += 2)
                                Triple2(g, GroupBytes, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                            if (t < t1)
                                for (int k = 0; k < 3; k++)
                                    Group1(g + k * GroupBytes, Act + (long)t * ActRowBytes, Cols, Y + (long)t * Rows + r + k * G);
                        }
                    }
                    // AVX-512: two groups (sixteen rows) at a time, eight tokens, four or one (Q4_K: four, the rest on
                    // the one-group kernel); a lone last group goes on.
                    if (Pair4 != null)
                    {
                        for (; r + 2 * G <= end; r += 2 * G)
                        {
                            byte* g = Packed + (long)(r / G) * GroupBytes;
                            int t = t0;
                            if (Pair8 != null)
                                for (; t + 8 <= t1; t += 8)
                                    Pair8(g, GroupBytes, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                            for (; t + 4 <= t1; t += 4)
                                Pair4(g, GroupBytes, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                            for (; t < t1; t++)
                            {
                                if (Pair1 != null)
                                    Pair1(g, GroupBytes, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                                else
                                {
                                    Group1(g, Act + (long)t * ActRowBytes, Cols, Y + (long)t * Rows + r);
                                    Group1(g + GroupBytes, Act + (long)t * ActRowBytes, Cols, Y + (long)t * Rows + r + G);
                                }
                            }
                        }
                    }
                    for (; r + G <= end; r += G)
                    {
                        int group = r / G;
                        byte* g = Packed + (long)group * GroupBytes;
                        var one = Group1;
                        var four = Group4;
                        var eight = Group8;
                        if (group < PairedGroupCount)
                        {
                            // A group of a pair stored as one stream: its half's kernels, given the pair's first byte.
                            bool second = (group & 1) != 0;
                            if (second) g -= GroupBytes;
                            one = second ? Second1 : First1;
                            four = second ? Second4 : First4;
                            eight = second ? Second8 : First8;
                        }
                        int t = t0;
                        if (eight != null)
                            for (; t + 8 <= t1; t += 8)
                                eight(g, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                        for (; t + 4 <= t1; t += 4)
                            four(g, Act + (long)t * ActRowBytes, ActRowBytes, Cols, Y + (long)t * Rows + r, Rows);
                        for (; t < t1; t++)
                            one(g, Act + (long)t * ActRowBytes, Cols, Y + (long)t * Rows + r);
                    }
                }
                for (; r < r1; r++)
                {
                    byte* wr = W + (long)r * WRowBytes;
                    int t = t0;
                    if (kernel4 != null)
                    {
                        for (; t + 4 <= t1; t += 4)
                        {
                            kernel4(wr, Act + (long)t * ActRowBytes, ActRowBytes, Cols, results);
                            for (int k = 0; k < 4; k++) Y[(long)(t + k) * Rows + r] = results[k];
                        }
                    }
                    for (; t < t1; t++)
                        Y[(long)t * Rows + r] = kernel(wr, Act + (long)t * ActRowBytes, Cols);
                }
            }
        }
    }

    private struct DotWork : IParallelWork
    {
        public Three<MatJob> Jobs;
        public int Count;

        public void Execute(int item)
        {
            int j = item < Jobs[0].End ? 0 : Count > 1 && item < Jobs[1].End ? 1 : 2;
            Jobs[j].Execute(item - Jobs[j].Start);
        }
    }
}
