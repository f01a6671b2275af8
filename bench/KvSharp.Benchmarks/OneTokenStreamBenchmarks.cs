using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// One-token (decode) products streaming their weights from memory (issue 18: Q8_0 and Q4_0 decode at 0.85 of the read
/// bandwidth or better). The weights are a `small` model's matrices (12 layers of q, k, v, o 768 x 768, gate and up
/// 2048 x 768, down 768 x 2048, and the 32000 x 768 output; 116 MB as Q8_0, 62 MB as Q4_0, far above L3), interleaved as
/// models run them; one operation is one token through all of them, a parallel-for per matrix as the engine runs it.
/// Each <see cref="OneTokenVariant"/> streams the same bytes its own way, all on one <see cref="Threads"/>-thread pool;
/// the matrices sit on transparent huge pages where Linux gives them (<see cref="HugePageSlabs"/>), as models' do.
/// Run (the second line is the AVX2-only class: VEX code with 16 registers, no AVX-512):
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*OneTokenStream*'
/// DOTNET_EnableAVX512=0 dotnet run -c Release --project bench/KvSharp.Benchmarks -- --filter '*OneTokenStream*'
/// </code>
/// Read each variant against <see cref="OneTokenVariant.LoadOnly"/> of the same type and thread count (the ceiling of
/// this access pattern) and <see cref="OneTokenVariant.Probe"/> (one contiguous stream on 4 KiB pages, as the speed
/// scenario's bandwidth probe reads).
/// </summary>
public unsafe class OneTokenStreamBenchmarks
{
    private readonly List<(KernelData Raw, InterleavedRows Packed)> _matrices = [];
    private readonly Dictionary<int, nint> _activations = [];
    private readonly Dictionary<InterleavedRows, nint> _smallPages = [];
    private readonly Dictionary<InterleavedRows, (nint Data, int GroupBytes, HugePageSlabs.Slab Slab)> _floatScales = [];
    private readonly Dictionary<InterleavedRows, (nint Data, HugePageSlabs.Slab Slab)> _pairStreams = [];
    private KernelPool _pool = null!;
    private MatMul _matmul = null!;
    private float* _output;
    private byte* _probe;
    private long _bytes;
    private float[] _x = null!, _y = null!;

    [Params(GgmlType.Q8_0, GgmlType.Q4_0)]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>
    /// One 768 x 768 matrix (Q4_0 332 KB, in L2) run <see cref="InCacheRepeats"/> times per operation instead of the
    /// model's: the kernels' arithmetic without the stream from memory, to tell which of the two bounds a variant.
    /// </summary>
    public bool InCache { get; set; }

    private const int InCacheRepeats = 64;

    [ParamsSource(nameof(Variants))]
    public OneTokenVariant Variant { get; set; }

    /// <summary>
    /// Every variant this machine runs for both types (the pair variants need AVX-512; the Q4_0-only ones of
    /// <see cref="Q4ScaleVariants"/> run through <see cref="OneTokenAlternation"/>).
    /// </summary>
    public static IEnumerable<OneTokenVariant> Variants
        => Enum.GetValues<OneTokenVariant>().Where(v => !Q4Only(v) && (v != OneTokenVariant.Avx512Pair || KernelPaths.IsAvailable(KernelPath.Avx512)));

    internal static bool Q4Only(OneTokenVariant v) => v is OneTokenVariant.Q4FloatScales or OneTokenVariant.Q4CheapHalves or OneTokenVariant.Q4Old || Q4Pair(v);

    private static bool Q4Pair(OneTokenVariant v) => v is OneTokenVariant.Q4FloatScalesPair or OneTokenVariant.Q4CheapHalvesPair
        or OneTokenVariant.Q4GfniPair or OneTokenVariant.Q4CheapHalvesGfniPair or OneTokenVariant.Q4OldPair or OneTokenVariant.Q4PairStream
        or OneTokenVariant.Q4PairStreamNoPrefetch;

    private static bool IsPair(OneTokenVariant v) => v is OneTokenVariant.Avx512Pair or OneTokenVariant.Avx2TwoGroups
        or OneTokenVariant.Avx2TwoGroupsNoPrefetch || Q4Pair(v);

    [GlobalSetup]
    public void Setup()
    {
        if (InCache)
        {
            Add(768, 768, seed: 0);
        }
        else
        {
            for (int layer = 0; layer < 12; layer++)
                foreach (var (rows, cols) in new[] { (768, 768), (768, 768), (768, 768), (768, 768), (2048, 768), (2048, 768), (768, 2048) })
                    Add(rows, cols, seed: _matrices.Count);
            Add(32000, 768, seed: _matrices.Count);
        }
        foreach (int cols in new[] { 768, 2048 })
        {
            int rowBytes = (int)GgmlTypes.RowBytes(GgmlType.Q8_0, cols) + VecDotAvx2Interleaved.ExtraBytes(cols / BlockLayouts.QK);
            byte* row = (byte*)NativeMemory.AlignedAlloc((nuint)rowBytes, 64);
            var x = new float[cols];
            KernelData.Fill(new Random(cols), x, 1f);
            Quantize.Row(GgmlType.Q8_0, x, new Span<byte>(row, rowBytes));
            VecDotAvx2Interleaved.AppendExtras(row, cols / BlockLayouts.QK);
            _activations[cols] = (nint)row;
        }
        _output = (float*)NativeMemory.AlignedAlloc(32000 * sizeof(float), 64);
        _probe = (byte*)NativeMemory.AlignedAlloc((nuint)_bytes, 64);
        new Span<byte>(_probe, checked((int)_bytes)).Fill(1);
        if (Variant == OneTokenVariant.Avx2SmallPages)
            foreach (var (_, packed) in _matrices)
            {
                byte* copy = (byte*)NativeMemory.AlignedAlloc((nuint)packed.Bytes, 64); // each its own, on 4 KiB pages
                Buffer.MemoryCopy(packed.Data, copy, packed.Bytes, packed.Bytes);
                _smallPages[packed] = (nint)copy;
            }
        if (Type == GgmlType.Q4_0)
            foreach (var (raw, packed) in _matrices)
            {
                byte* copy = Q4ScaleVariants.FloatScaleCopy(packed, raw.Cols, out int groupBytes, out var slab);
                _floatScales[packed] = ((nint)copy, groupBytes, slab);
                _pairStreams[packed] = ((nint)Q4ScaleVariants.PairStreamCopy(packed, raw.Cols, out var pairSlab), pairSlab);
            }
        _pool = new KernelPool(Threads);
        _matmul = new MatMul(_pool);
        _x = new float[2048];
        KernelData.Fill(new Random(5), _x, 1f);
        _y = new float[32000];
        CheckSameBits(Variant);
    }

    private void Add(int rows, int cols, int seed)
    {
        var raw = new KernelData(Type, rows, cols, seed);
        var packed = InterleavedRows.Create(raw.Matrix, pairGroups: false); // the variants read the plain layout (PairedQ4 is the paired one)
        _matrices.Add((raw, packed));
        _bytes += packed.Bytes;
    }

    /// <summary>Every kernel variant gives the shipped AVX2 kernel's bits (the loads-only ones excepted), or the setup fails.</summary>
    internal void CheckSameBits(OneTokenVariant variant)
    {
        if (variant is OneTokenVariant.LoadOnly or OneTokenVariant.Probe or OneTokenVariant.Engine) return;
        foreach (var (raw, packed) in _matrices)
        {
            Run(OneTokenVariant.Avx2, raw, packed);
            var expected = new ReadOnlySpan<float>(_output, raw.Rows).ToArray();
            new Span<float>(_output, raw.Rows).Fill(float.NaN);
            Run(variant, raw, packed);
            if (!new ReadOnlySpan<float>(_output, raw.Rows).SequenceEqual(expected))
                throw new InvalidOperationException($"OneTokenStreamBenchmarks: {variant} differs from the AVX2 kernel on a {raw.Rows} x {raw.Cols} {Type} matrix");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pool.Dispose();
        foreach (var (raw, packed) in _matrices)
        {
            packed.Dispose();
            raw.Dispose();
        }
        foreach (nint row in _activations.Values) NativeMemory.AlignedFree((void*)row);
        foreach (nint copy in _smallPages.Values) NativeMemory.AlignedFree((void*)copy);
        foreach (var copy in _floatScales.Values) HugePageSlabs.Free(copy.Slab);
        foreach (var copy in _pairStreams.Values) HugePageSlabs.Free(copy.Slab);
        NativeMemory.AlignedFree(_output);
        NativeMemory.AlignedFree(_probe);
    }

    [Benchmark]
    public void Token()
    {
        if (Variant == OneTokenVariant.Probe)
        {
            var probe = new ProbeWork { Data = _probe, Bytes = _bytes, Output = _output };
            _pool.Run(ref probe, (int)((_bytes + ProbeWork.Chunk - 1) / ProbeWork.Chunk));
            return;
        }
        for (int i = 0; i < (InCache ? InCacheRepeats : 1); i++)
            foreach (var (raw, packed) in _matrices) Run(Variant, raw, packed);
    }

    private void Run(OneTokenVariant variant, KernelData raw, InterleavedRows packed)
    {
        if (variant == OneTokenVariant.Engine)
        {
            _matmul.Multiply(raw.Matrix with { Interleaved = packed }, _x.AsSpan(0, raw.Cols), 1, _y.AsSpan(0, raw.Rows));
            return;
        }
        if (Q4Only(variant) && Type != GgmlType.Q4_0) throw new ArgumentException($"OneTokenStreamBenchmarks: {variant} is for Q4_0, not {Type}");
        if (Q4Pair(variant) && !KernelPaths.IsAvailable(KernelPath.Avx512)) throw new ArgumentException($"OneTokenStreamBenchmarks: {variant} needs the AVX-512 path");
        if (variant is OneTokenVariant.Q4GfniPair or OneTokenVariant.Q4CheapHalvesGfniPair or OneTokenVariant.Q4PairStream or OneTokenVariant.Q4PairStreamNoPrefetch
            && !System.Runtime.Intrinsics.X86.Gfni.V512.IsSupported)
            throw new ArgumentException($"OneTokenStreamBenchmarks: {variant} needs GFNI");
        bool pairs = IsPair(variant), floats = variant is OneTokenVariant.Q4FloatScales or OneTokenVariant.Q4FloatScalesPair;
        int unit = pairs ? 2 : 1, groups = packed.Groups;
        int rowTile = variant == OneTokenVariant.Avx2Tiles ? _matmul.RowTile(raw.Rows) : _matmul.RowTile(raw.Rows, nTokens: 1);
        int perItem = (rowTile + 8 * unit - 1) / (8 * unit) * unit;
        var work = new StreamWork
        {
            Variant = variant,
            Q8 = Type == GgmlType.Q8_0,
            Packed = variant == OneTokenVariant.Avx2SmallPages ? (byte*)_smallPages[packed] : floats ? (byte*)_floatScales[packed].Data
                : variant is OneTokenVariant.Q4PairStream or OneTokenVariant.Q4PairStreamNoPrefetch ? (byte*)_pairStreams[packed].Data : packed.Data,
            GroupBytes = floats ? _floatScales[packed].GroupBytes : packed.GroupBytes,
            Groups = groups,
            GroupsPerItem = perItem,
            Activations = (byte*)_activations[raw.Cols],
            Cols = raw.Cols,
            Output = _output,
        };
        if (variant == OneTokenVariant.Avx512Pair) VecDotAvx512Interleaved.Kernels(Type, out work.Pair, out _, out _);
        if (variant == OneTokenVariant.Q4FloatScalesPair) work.Pair = &Q4ScaleVariants.Pair1<Q4ScaleVariants.FloatScales, Q4ScaleVariants.ShiftNibbles>;
        if (variant == OneTokenVariant.Q4CheapHalvesPair) work.Pair = &Q4ScaleVariants.Pair1<Q4ScaleVariants.CheapHalves, Q4ScaleVariants.ShiftNibbles>;
        if (variant == OneTokenVariant.Q4GfniPair) work.Pair = &Q4ScaleVariants.Pair1<Q4ScaleVariants.OldHalves, Q4ScaleVariants.GfniNibbles>;
        if (variant == OneTokenVariant.Q4PairStream) work.Pair = &Q4ScaleVariants.PairStream1<OneTokenVariants.IntoL2>;
        if (variant == OneTokenVariant.Q4PairStreamNoPrefetch) work.Pair = &Q4ScaleVariants.PairStream1<OneTokenVariants.NoHint>;
        if (variant == OneTokenVariant.Q4CheapHalvesGfniPair) work.Pair = &Q4ScaleVariants.Pair1<Q4ScaleVariants.CheapHalves, Q4ScaleVariants.GfniNibbles>;
        if (variant == OneTokenVariant.Q4OldPair) work.Pair = &Q4ScaleVariants.Pair1<Q4ScaleVariants.OldHalves, Q4ScaleVariants.ShiftNibbles>;
        _pool.Run(ref work, (groups + perItem - 1) / perItem);
    }

    /// <summary>One work item: a range of whole groups (pairs for the two-group variants; a lone last group runs on AVX2).</summary>
    private struct StreamWork : IParallelWork
    {
        public OneTokenVariant Variant;
        public bool Q8;
        public byte* Packed, Activations;
        public nint GroupBytes;
        public int Groups, GroupsPerItem, Cols;
        public float* Output;
        public delegate*<byte*, nint, byte*, nint, int, float*, nint, void> Pair;

        public readonly void Execute(int item)
        {
            if (Q8) Range<OneTokenVariants.Q8>(item);
            else Range<OneTokenVariants.Q4>(item);
        }

        private readonly void Range<TBlock>(int item) where TBlock : OneTokenVariants.IBlock
        {
            int g = item * GroupsPerItem, end = Math.Min(Groups, g + GroupsPerItem);
            for (; g < end; g++)
            {
                byte* w = Packed + g * GroupBytes;
                float* o = Output + 8 * g;
                bool two = g + 1 < end;
                switch (Variant)
                {
                    case OneTokenVariant.Avx512Pair when two:
                    case var _ when two && Q4Pair(Variant):
                        Pair(w, GroupBytes, Activations, 0, Cols, o, 0);
                        g++;
                        break;
                    case OneTokenVariant.Avx2TwoGroups when two:
                        OneTokenVariants.TwoGroups<TBlock, OneTokenVariants.IntoL2>(w, GroupBytes, Activations, Cols, o);
                        g++;
                        break;
                    case OneTokenVariant.Avx2TwoGroupsNoPrefetch when two:
                        OneTokenVariants.TwoGroups<TBlock, OneTokenVariants.NoHint>(w, GroupBytes, Activations, Cols, o);
                        g++;
                        break;
                    case OneTokenVariant.Avx2Prefetch1K:
                        OneTokenVariants.OneGroupAhead<TBlock, OneTokenVariants.IntoL2>(w, 1024, Activations, Cols, o);
                        break;
                    case OneTokenVariant.Q4FloatScales or OneTokenVariant.Q4FloatScalesPair:
                        Q4ScaleVariants.X1<Q4ScaleVariants.FloatScales>(w, Activations, Cols, o);
                        break;
                    case OneTokenVariant.Q4Old:
                        Q4ScaleVariants.X1<Q4ScaleVariants.OldHalves>(w, Activations, Cols, o);
                        break;
                    case OneTokenVariant.Q4CheapHalves or OneTokenVariant.Q4CheapHalvesPair:
                        Q4ScaleVariants.X1<Q4ScaleVariants.CheapHalves>(w, Activations, Cols, o);
                        break;
                    case OneTokenVariant.LoadOnly:
                        OneTokenVariants.LoadOnly(w, GroupBytes, o);
                        break;
                    default:
                        if (Q8) VecDotAvx2Interleaved.Q8_0x1(w, Activations, Cols, o);
                        else VecDotAvx2Interleaved.Q4_0x1(w, Activations, Cols, o);
                        break;
                }
            }
        }
    }

    /// <summary>The bandwidth probe's access: one contiguous buffer of the same size in 1 MiB items.</summary>
    private struct ProbeWork : IParallelWork
    {
        public const int Chunk = 1 << 20;
        public byte* Data;
        public long Bytes;
        public float* Output;

        public readonly void Execute(int item)
        {
            long start = (long)item * Chunk;
            OneTokenVariants.LoadOnly(Data + start, (nint)Math.Min(Chunk, Bytes - start), Output + 8 * (item % 64));
        }
    }
}

/// <summary>How <see cref="OneTokenStreamBenchmarks"/> streams a token's weights.</summary>
public enum OneTokenVariant
{
    /// <summary>MatMul.Multiply on the default kernel paths (activations quantized per product, as the engine does).</summary>
    Engine,

    /// <summary>
    /// The shipped AVX2 kernel: one group (one contiguous stream) per call, each thread one contiguous share of a
    /// matrix, as MatMul splits one-token products.
    /// </summary>
    Avx2,

    /// <summary>
    /// The shipped AVX2 kernel over copies of the matrices each in its own allocation on 4 KiB pages, as they were before
    /// <see cref="HugePageSlabs"/>.
    /// </summary>
    Avx2SmallPages,

    /// <summary>The shipped AVX2 kernel in 64-row tiles claimed in turn (MatMul's split for one token before issue 18).</summary>
    Avx2Tiles,

    /// <summary>The shipped AVX-512 kernel: two groups per call, the next pair prefetched into L2.</summary>
    Avx512Pair,

    /// <summary>The AVX2 arithmetic with each block's lines 1 KiB ahead requested into L2 (dropped).</summary>
    Avx2Prefetch1K,

    /// <summary>Two groups per pass on AVX2 (two streams), the next pair prefetched into L2 (dropped).</summary>
    Avx2TwoGroups,

    /// <summary>Two groups per pass on AVX2 without prefetch (dropped: the streams defeat the hardware prefetcher).</summary>
    Avx2TwoGroupsNoPrefetch,

    /// <summary>The ceiling of this access pattern: the same bytes in the same shares, only loaded.</summary>
    LoadOnly,

    /// <summary>One contiguous stream of the same size in 1 MiB items (the speed scenario's bandwidth probe).</summary>
    Probe,

    /// <summary>Q4_0 only: the AVX2 kernel over a copy whose block scales are stored as floats (dropped, <see cref="Q4ScaleVariants"/>).</summary>
    Q4FloatScales,

    /// <summary>Q4_0 only: the AVX-512 pair kernel over the float-scale copy (dropped).</summary>
    Q4FloatScalesPair,

    /// <summary>Q4_0 only: the AVX2 kernel with the four-instruction half conversion (dropped).</summary>
    Q4CheapHalves,

    /// <summary>Q4_0 only: the AVX-512 pair kernel with the four-instruction half conversion.</summary>
    Q4CheapHalvesPair,

    /// <summary>Q4_0 only: the AVX-512 pair kernel with the high nibbles taken down by GFNI.</summary>
    Q4GfniPair,

    /// <summary>Q4_0 only: the AVX-512 pair kernel with both the cheap conversion and GFNI (dropped).</summary>
    Q4CheapHalvesGfniPair,

    /// <summary>Q4_0 only: the bench's copy of the shipped AVX-512 pair kernel (half conversion in nine instructions, shift-and-mask nibbles).</summary>
    Q4OldPair,

    /// <summary>Q4_0 only: the shipped pair arithmetic over a copy with each pair of groups as one stream, the pair after next prefetched.</summary>
    Q4PairStream,

    /// <summary>Q4_0 only: <see cref="Q4PairStream"/> without prefetch requests.</summary>
    Q4PairStreamNoPrefetch,

    /// <summary>Q4_0 only: the bench's copy of the shipped AVX2 kernel (half conversion in nine instructions).</summary>
    Q4Old,
}
