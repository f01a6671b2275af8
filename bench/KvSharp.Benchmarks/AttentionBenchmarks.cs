using BenchmarkDotNet.Attributes;
using KvSharp.Attention;
using KvSharp.Cache;

namespace KvSharp.Benchmarks;

/// <summary>
/// One decode step's attention over 64 KV heads (head_dim 64; e.g. 16 layers x 4 KV heads): for each, a token's group
/// of query heads against every cached position, with keys and values stored as F32, F16 or Q8_0. Decode attention reads
/// each head's whole cache once, and at 2048 positions the 64 heads' F32 cache (64 MiB) is larger than the L3, as in a
/// real step; so this shows what halving (F16) or nearly quartering (Q8_0) the bytes buys against what widening or
/// dequantizing them costs.
/// </summary>
[MemoryDiagnoser]
public class AttentionBenchmarks
{
    private const int HeadDim = 64, Heads = 64;

    [Params(256, 2048)]
    public int Context { get; set; }

    [Params(1, 4)]
    public int Group { get; set; }

    [Params(KvElementType.F32, KvElementType.F16, KvElementType.Q8_0)]
    public KvElementType KvType { get; set; }

    private float[] _keys = [], _values = [], _queries = [], _output = [], _scratch = [];
    private Half[] _halfKeys = [], _halfValues = [];
    private sbyte[] _q8Keys = [], _q8Values = [];
    private float[] _q8KeyScales = [], _q8ValueScales = [];
    private readonly int _q8Group = KvElementTypes.Q8Group(HeadDim);

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
    }

    [Benchmark]
    public void DecodeStep64KvHeads()
    {
        int run = Context * HeadDim;
        for (int h = 0; h < Heads; h++)
        {
            var block = QueryBlock.Single(_queries, _output, Group, HeadDim, Context);
            if (KvType == KvElementType.Q8_0)
                CausalAttention.Attend<ContiguousKvRows<sbyte>, sbyte>(block, new ContiguousKvRows<sbyte>(_q8Keys.AsSpan(h * run, run),
                    _q8Values.AsSpan(h * run, run), _q8KeyScales.AsSpan(h * run / _q8Group, run / _q8Group),
                    _q8ValueScales.AsSpan(h * run / _q8Group, run / _q8Group), HeadDim, _q8Group), 0.125f, _scratch);
            else if (KvType == KvElementType.F16)
                CausalAttention.Attend<ContiguousKvRows<Half>, Half>(block,
                    new ContiguousKvRows<Half>(_halfKeys.AsSpan(h * run, run), _halfValues.AsSpan(h * run, run), HeadDim), 0.125f, _scratch);
            else
                CausalAttention.Attend(block, new ContiguousKvRows<float>(_keys.AsSpan(h * run, run), _values.AsSpan(h * run, run), HeadDim), 0.125f, _scratch);
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
