using BenchmarkDotNet.Attributes;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// One decode step of the whole model for 1, 4 or 16 sequences batched together (the synthetic `small` shape, paged F32
/// KV cache, 2 threads), timed per step: a step yields one token per sequence, so Sequences x (1-sequence time) over the
/// 16-sequence time is how much the batch buys (issue 18's target is 4x), without the engine's scheduling and sampling. Each sequence starts
/// from a 32-token prompt and decodes 64 tokens, then is cut back to the prompt, so the context stays 32-96 as in
/// `kvsharp bench --scenario concurrency`.
/// </summary>
public class BatchedDecodeBenchmarks
{
    private const int Prompt = 32, Decoded = 64;

    [Params(GgmlType.Q8_0, GgmlType.Q4_0)]
    public GgmlType Type { get; set; }

    [Params(1, 4, 16)]
    public int Sequences { get; set; }

    private LlmModel _model = null!;
    private ForwardPass _forward = null!;
    private KvBlockPool _pool = null!;
    private PagedKvSequence[] _sequences = [];
    private BatchSegment[] _segments = [];
    private int[] _tokens = [];
    private float[] _logits = [];

    [GlobalSetup]
    public void Setup()
    {
        _model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(SyntheticShape.Small, Type), new ModelLoadOptions { Threads = 2 });
        var c = _model.Config;
        _forward = _model.CreateForwardPass();
        _pool = new KvBlockPool(c, 16, Sequences * ((Prompt + Decoded) / 16 + 1));
        _logits = new float[Sequences * c.VocabSize];
        _sequences = new PagedKvSequence[Sequences];
        var rng = new Random(500);
        for (int s = 0; s < Sequences; s++)
        {
            _sequences[s] = new PagedKvSequence(_pool, Prompt + Decoded);
            int[] prompt = [.. Enumerable.Range(0, Prompt).Select(_ => rng.Next(3, c.VocabSize))];
            _forward.Forward(prompt, _sequences[s], _logits, allLogits: false);
        }
        _segments = [.. _sequences.Select(s => new BatchSegment(s, 1, LogitsRequest.Last))];
        _tokens = [.. Enumerable.Range(0, Sequences).Select(s => 5 + s)];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var s in _sequences) s.Release();
        _pool.Dispose();
        _model.Dispose();
    }

    [Benchmark(OperationsPerInvoke = Decoded)]
    public void DecodeStep()
    {
        for (int i = 0; i < Decoded; i++) _forward.Forward(_tokens, _segments, _logits);
        foreach (var s in _sequences) s.Truncate(Prompt);
    }
}
