using BenchmarkDotNet.Attributes;
using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// One decode step's attention over 64 KV heads (head_dim 64; e.g. 16 layers x 4 KV heads): for each, a token's group
/// of query heads against every cached position, with keys and values stored as F32, F16 or Q8_0. Decode attention reads
/// each head's whole cache once, and at 2048 positions the 64 heads' F32 cache (64 MiB) is larger than the L3, as in a
/// real step; so this shows what halving (F16) or nearly quartering (Q8_0) the bytes buys against what widening or
/// dequantizing them costs. Paged, the same heads are 16 layers x 4 KV heads of a block pool (16-token blocks), so each
/// head's rows are 16-row runs half a block apart (what the engine reads), not one stream.
/// </summary>
[MemoryDiagnoser]
public class AttentionBenchmarks
{
    private const int HeadDim = 64, Heads = 64, Layers = 16, KvHeads = Heads / Layers, BlockSize = 16;

    [Params(256, 2048)]
    public int Context { get; set; }

    [Params(1, 4)]
    public int Group { get; set; }

    [Params(KvElementType.F32, KvElementType.F16, KvElementType.Q8_0)]
    public KvElementType KvType { get; set; }

    [Params(false, true)]
    public bool Paged { get; set; }

    private KvBlockPool? _pool;
    private PagedKvSequence? _sequence;

    private float[] _keys = [], _values = [], _queries = [], _output = [], _scratch = [];
    private Half[] _halfKeys = [], _halfValues = [];
    private sbyte[] _q8Keys = [], _q8Values = [];
    private float[] _q8KeyScales = [], _q8ValueScales = [];
    private readonly int _q8Group = KvQ8.GroupSize(HeadDim);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(9);
        _keys = new float[Heads * Context * HeadDim];
        _values = new float[Heads * Context * HeadDim];
        _queries = new float[Group * HeadDim];
        KernelData.Fill(rng, _keys, 1f);
        KernelData.Fill(rng, _values, 1f);
        KernelData.Fill(rng, _queries, 1f);
        _halfKeys = _keys.Select(x => (Half)x).ToArray();
        _halfValues = _values.Select(x => (Half)x).ToArray();
        (_q8Keys, _q8KeyScales) = Quantize(_keys);
        (_q8Values, _q8ValueScales) = Quantize(_values);
        _output = new float[Group * HeadDim];
        _scratch = new float[CausalAttention.ScratchLength(Group)];
        if (Paged) FillPool();
    }

    /// <summary>The same keys and values written position by position into a pool's blocks (head h = layer h / 4, KV head h % 4).</summary>
    private void FillPool()
    {
        var config = new ModelConfig
        {
            Architecture = "llama", EmbeddingDim = KvHeads * HeadDim, LayerCount = Layers, HeadCount = KvHeads, KvHeadCount = KvHeads,
            HeadDim = HeadDim, FeedForwardDim = HeadDim, VocabSize = 1, TrainedContextLength = Context, RmsNormEps = 1e-5f,
            RopeTheta = 10000f, RopeStyle = RopeStyle.Normal, RopeDimensions = HeadDim,
        };
        _pool = new KvBlockPool(config, BlockSize, Context / BlockSize, elementType: KvType);
        _sequence = new PagedKvSequence(_pool, Context);
        _sequence.Reserve(Context);
        var keys = new float[KvHeads * HeadDim];
        var values = new float[KvHeads * HeadDim];
        for (int layer = 0; layer < Layers; layer++)
            for (int position = 0; position < Context; position++)
            {
                for (int h = 0; h < KvHeads; h++)
                {
                    int at = ((layer * KvHeads + h) * Context + position) * HeadDim;
                    _keys.AsSpan(at, HeadDim).CopyTo(keys.AsSpan(h * HeadDim));
                    _values.AsSpan(at, HeadDim).CopyTo(values.AsSpan(h * HeadDim));
                }
                _sequence.Write(layer, position, keys, values);
            }
        _sequence.Commit(Context);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool?.Dispose();

    [Benchmark]
    public void DecodeStep64KvHeads()
    {
        int run = Context * HeadDim;
        for (int h = 0; h < Heads; h++)
        {
            var block = QueryBlock.Single(_queries, _output, Group, HeadDim, Context);
            if (_sequence is not null)
                _sequence.Attend(h / KvHeads, h % KvHeads, block, 0.125f, _scratch);
            else if (KvType == KvElementType.Q8_0)
                CausalAttention.Attend<ContiguousKvRows<KvQ8, KvQ8>, KvQ8>(block, ContiguousKvRows.Of(_q8Keys.AsSpan(h * run, run),
                    _q8Values.AsSpan(h * run, run), _q8KeyScales.AsSpan(h * run / _q8Group, run / _q8Group),
                    _q8ValueScales.AsSpan(h * run / _q8Group, run / _q8Group), HeadDim), 0.125f, _scratch);
            else if (KvType == KvElementType.F16)
                CausalAttention.Attend<ContiguousKvRows<KvF16, KvF16>, KvF16>(block,
                    ContiguousKvRows.Of(_halfKeys.AsSpan(h * run, run), _halfValues.AsSpan(h * run, run), HeadDim), 0.125f, _scratch);
            else
                CausalAttention.Attend(block, ContiguousKvRows.Of(_keys.AsSpan(h * run, run), _values.AsSpan(h * run, run), HeadDim), 0.125f, _scratch);
        }
    }

    private (sbyte[] Quants, float[] Scales) Quantize(float[] x)
    {
        var q = new sbyte[x.Length];
        var d = new float[x.Length / _q8Group];
        for (int row = 0; row < x.Length / HeadDim; row++)
            KvSharp.Tensors.KvQ8.Quantize(x.AsSpan(row * HeadDim, HeadDim), q.AsSpan(row * HeadDim, HeadDim),
                d.AsSpan(row * HeadDim / _q8Group, HeadDim / _q8Group), _q8Group);
        return (q, d);
    }
}
