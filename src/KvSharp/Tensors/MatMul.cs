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
/// <para><b>Tiling.</b> Work items are tiles of <see cref="RowTile"/> weight rows × up to <see cref="TokenTile"/>
/// tokens; inside a tile the loop runs tokens innermost so a weight row (under 1 KiB for a 768-wide Q8_0 row) is
/// read from memory once and reused from L1 for every token of the tile.</para>
/// <para>Where a four-token kernel exists (<see cref="VecDot.Kernel4"/>: Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K, F16 on
/// AVX2) a weight row is unpacked once for four tokens; those kernels are bit-identical to the single-token ones per
/// token, so this does not break the invariance. Matrices too small to be worth a thread hand-off run on the
/// calling thread alone.</para>
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

    /// <summary>Rows per work item for a matrix: enough items to balance the threads, but each worth a few µs.</summary>
    internal int RowTile(int rows, int tokenTiles)
    {
        int items = 4 * _pool.Threads;
        int perItem = (rows * tokenTiles + items - 1) / items;
        return Math.Clamp(perItem, 4, 64);
    }

    /// <summary>
    /// x: row-major [nTokens, w.Cols]; y: row-major [nTokens, w.Rows]. Only the first nTokens rows of each are used.
    /// </summary>
    public void Multiply(in WeightMatrix w, ReadOnlySpan<float> x, int nTokens, Span<float> y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nTokens);
        if (nTokens == 0 || w.Rows == 0) return;
        if (x.Length < (long)nTokens * w.Cols)
            throw new ArgumentException($"MatMul: x has {x.Length} floats, {nTokens} tokens x {w.Cols} columns need {(long)nTokens * w.Cols}", nameof(x));
        if (y.Length < (long)nTokens * w.Rows)
            throw new ArgumentException($"MatMul: y has {y.Length} floats, {nTokens} tokens x {w.Rows} rows need {(long)nTokens * w.Rows}", nameof(y));

        GgmlType actType = GgmlTypes.VecDotType(w.Type);
        int actRowBytes = checked((int)GgmlTypes.RowBytes(actType, w.Cols));
        long need = (long)actRowBytes * nTokens;
        if (_scratch.Length < need)
            _scratch = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(need, _scratch.Length * 2L)), pinned: true);

        fixed (float* px = x)
        fixed (float* py = y)
        fixed (byte* act = _scratch)
        {
            bool inline = (long)w.Rows * w.Cols * nTokens < InlineWork;
            var quant = new QuantizeWork { Type = actType, X = px, Cols = w.Cols, Act = act, ActRowBytes = actRowBytes };
            if (inline)
                for (int t = 0; t < nTokens; t++) quant.Execute(t);
            else
                _pool.Run(ref quant, nTokens);

            int tokenTiles = (nTokens + TokenTile - 1) / TokenTile;
            int rowTile = RowTile(w.Rows, tokenTiles);
            int rowTiles = (w.Rows + rowTile - 1) / rowTile;
            var dot = new DotWork
            {
                Kernel = VecDot.Kernel(w.Type, VecDot.UseAvx2),
                Kernel4 = VecDot.Kernel4(w.Type, VecDot.UseAvx2),
                W = w.Data,
                WRowBytes = w.RowBytes,
                Rows = w.Rows,
                Cols = w.Cols,
                Act = act,
                ActRowBytes = actRowBytes,
                Y = py,
                NTokens = nTokens,
                RowTile = rowTile,
                RowTiles = rowTiles,
            };
            if (inline)
                for (int i = 0; i < rowTiles * tokenTiles; i++) dot.Execute(i);
            else
                _pool.Run(ref dot, rowTiles * tokenTiles);
        }
    }

    private struct QuantizeWork : IParallelWork
    {
        public GgmlType Type;
        public float* X;
        public int Cols;
        public byte* Act;
        public int ActRowBytes;

        public void Execute(int t) =>
            Quantize.Row(Type, new ReadOnlySpan<float>(X + (long)t * Cols, Cols), new Span<byte>(Act + (long)t * ActRowBytes, ActRowBytes));
    }

    private struct DotWork : IParallelWork
    {
        public delegate*<byte*, byte*, int, float> Kernel;
        public delegate*<byte*, byte*, nint, int, float*, void> Kernel4;
        public byte* W;
        public int WRowBytes, Rows, Cols;
        public byte* Act;
        public int ActRowBytes;
        public float* Y;
        public int NTokens, RowTile, RowTiles;

        public void Execute(int item)
        {
            int r0 = item % RowTiles * RowTile, r1 = Math.Min(Rows, r0 + RowTile);
            int t0 = item / RowTiles * TokenTile, t1 = Math.Min(NTokens, t0 + TokenTile);
            var kernel = Kernel;
            var kernel4 = Kernel4;
            float* four = stackalloc float[4];
            for (int r = r0; r < r1; r++)
            {
                byte* wr = W + (long)r * WRowBytes;
                int t = t0;
                // Four tokens at a time where a four-token kernel exists: each result is bit-identical to the
                // single-token kernel's, so how tokens are grouped never changes an output.
                if (kernel4 != null)
                {
                    for (; t + 4 <= t1; t += 4)
                    {
                        kernel4(wr, Act + (long)t * ActRowBytes, ActRowBytes, Cols, four);
                        for (int k = 0; k < 4; k++) Y[(long)(t + k) * Rows + r] = four[k];
                    }
                }
                for (; t < t1; t++)
                    Y[(long)t * Rows + r] = kernel(wr, Act + (long)t * ActRowBytes, Cols);
            }
        }
    }
}
