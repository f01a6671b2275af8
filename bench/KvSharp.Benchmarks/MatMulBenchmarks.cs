using BenchmarkDotNet.Attributes;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// A 2048 x 2048 weight matrix times 1 token (decode: memory-bound, compare bytes/s with `kvsharp bench`'s bandwidth)
/// and times 64 tokens (prefill: compute-bound), on a 2-thread <see cref="KernelPool"/>.
/// </summary>
[MemoryDiagnoser]
public class MatMulBenchmarks
{
    private const int Rows = 2048, Cols = 2048;
    private KernelData _w = null!;
    private KernelPool _pool = null!;
    private MatMul _matmul = null!;
    private float[] _x = null!, _y = null!;

    [Params(GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K)]
    public GgmlType Type { get; set; }

    [Params(1, 64)]
    public int Tokens { get; set; }

    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _w = new KernelData(Type, Rows, Cols);
        _pool = new KernelPool(Threads);
        _matmul = new MatMul(_pool);
        _x = new float[Tokens * Cols];
        KernelData.Fill(new Random(3), _x, 1f);
        _y = new float[Tokens * Rows];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pool.Dispose();
        _w.Dispose();
    }

    [Benchmark]
    public void Multiply() => _matmul.Multiply(_w.Matrix, _x, Tokens, _y);
}
