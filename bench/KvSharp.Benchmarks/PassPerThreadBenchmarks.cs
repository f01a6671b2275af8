using BenchmarkDotNet.Attributes;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Two ways to run one decode step of 4 or 16 sequences on 2 threads (`small` shape, Q8_0, paged F32 KV, contexts
/// 32-96 as in <see cref="BatchedDecodeBenchmarks"/>), side by side in one run:
/// <see cref="OnePass"/>, one forward pass over all the sequences on a 2-thread pool (how the engine runs a step), and
/// <see cref="PassPerThread"/>, the sequences split in two halves, each run by its own forward pass on a 1-thread
/// pool sharing the model's weights, the halves on the two threads at once with one join per step.
/// </summary>
/// <remarks>
/// An experiment for issue 18's 16-sequence target (4x the 1-sequence rate). A profile of a 16-sequence step on a
/// 2-vCPU Zen 4 shows the X8 kernel at the multiply floor of what .NET exposes without 512-bit VNNI, attention waiting
/// on the F32 KV rows it streams (about 75 MB a step) and about a dozen parallel regions per layer, each ending in a
/// wait for the slower thread. One pass per thread has no wait inside a step, and one thread's attention can overlap
/// the other thread's products, at the price of each thread streaming the weights itself (they come from L3 when the
/// threads are near each other) and eight tokens per product instead of sixteen (the same kernel: X8 either way).
/// Per output the arithmetic is the same in both, so the logits are the same bits. Not measured yet on a quiet machine.
/// </remarks>
public class PassPerThreadBenchmarks
{
    private const int Prompt = 32, Decoded = 64;

    [Params(4, 16)]
    public int Sequences { get; set; }

    private LlmModel _model = null!;
    private KvBlockPool _kv = null!;
    private PagedKvSequence[] _sequences = [];
    private KernelPool _halvesPool = null!;
    private KernelPool[] _halfPools = [];
    private Pass _whole = null!;
    private Pass[] _halves = [];

    [GlobalSetup]
    public void Setup()
    {
        _model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(SyntheticShape.Small, GgmlType.Q8_0), new ModelLoadOptions { Threads = 2 });
        var c = _model.Config;
        _kv = new KvBlockPool(c, 16, Sequences * ((Prompt + Decoded) / 16 + 1));
        _sequences = new PagedKvSequence[Sequences];
        var prefill = _model.CreateForwardPass();
        var logits = new float[c.VocabSize];
        var rng = new Random(500);
        for (int s = 0; s < Sequences; s++)
        {
            _sequences[s] = new PagedKvSequence(_kv, Prompt + Decoded);
            int[] prompt = [.. Enumerable.Range(0, Prompt).Select(_ => rng.Next(3, c.VocabSize))];
            prefill.Forward(prompt, _sequences[s], logits, allLogits: false);
        }
        _whole = new Pass(_model.CreateForwardPass(), _sequences, 0, c.VocabSize);
        _halfPools = [new KernelPool(1), new KernelPool(1)];
        int half = Sequences / 2;
        _halves =
        [
            new Pass(new ForwardPass(c, _model.Weights, _halfPools[0]), _sequences[..half], 0, c.VocabSize),
            new Pass(new ForwardPass(c, _model.Weights, _halfPools[1]), _sequences[half..], half, c.VocabSize),
        ];
        _halvesPool = new KernelPool(2);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _halvesPool.Dispose();
        foreach (var p in _halfPools) p.Dispose();
        foreach (var s in _sequences) s.Release();
        _kv.Dispose();
        _model.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Decoded)]
    public void OnePass()
    {
        Reserve();
        for (int i = 0; i < Decoded; i++) _whole.Step();
        Rewind();
    }

    [Benchmark(OperationsPerInvoke = Decoded)]
    public void PassPerThread()
    {
        Reserve();
        var halves = new Halves(_halves);
        for (int i = 0; i < Decoded; i++) _halvesPool.Run(ref halves, 2);
        Rewind();
    }

    /// <summary>
    /// Takes every block the decoded tokens will need up front, in both methods alike: the pool is not shared between
    /// threads (the engine allocates between steps), and two passes stepping at once must not take blocks from it.
    /// </summary>
    private void Reserve()
    {
        foreach (var s in _sequences) s.Reserve(Prompt + Decoded);
    }

    private void Rewind()
    {
        foreach (var s in _sequences) s.Truncate(Prompt);
    }

    /// <summary>One decode step of a set of sequences (the first is sequence <paramref name="first"/> of the benchmark) through one forward pass.</summary>
    private sealed class Pass(ForwardPass forward, PagedKvSequence[] sequences, int first, int vocab)
    {
        private readonly BatchSegment[] _segments = [.. sequences.Select(s => new BatchSegment(s, 1, LogitsRequest.Last))];
        // Sequence s decodes token 5 + s however the sequences are split, as in BatchedDecodeBenchmarks.
        private readonly int[] _tokens = [.. Enumerable.Range(first, sequences.Length).Select(s => 5 + s)];
        private readonly float[] _logits = new float[sequences.Length * vocab];

        public void Step() => forward.Forward(_tokens, _segments, _logits);
    }

    private readonly struct Halves(Pass[] halves) : IParallelWork
    {
        public void Execute(int index) => halves[index].Step();
    }
}
