using BenchmarkDotNet.Attributes;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// MatMul on interleaved weights (the layout models run on), so the group kernels are measured: eight rows against one,
/// four or eight tokens at once (AVX-512: sixteen rows). <see cref="Path"/> runs each kernel path this machine has
/// (<see cref="KernelPaths.Available"/>), alternated in one run, so old and new kernels are compared side by side.
/// The shape is a `small` model's attention projection: 2048 x 768, one thread.
/// </summary>
[MemoryDiagnoser]
public class InterleavedMatMulBenchmarks
{
    private const int Rows = 2048, Cols = 768;
    private KernelData _w = null!;
    private InterleavedRows _interleaved = null!;
    private WeightMatrix _matrix;
    private KernelPool _pool = null!;
    private MatMul _matmul = null!;
    private float[] _x = null!, _y = null!;
    private IDisposable? _forced;

    [Params(GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.MXFP4)]
    public GgmlType Type { get; set; }

    [Params(1, 16, 64)]
    public int Tokens { get; set; }

    [ParamsSource(nameof(Paths))]
    public KernelPath Path { get; set; }

    public static IEnumerable<KernelPath> Paths => KernelPaths.Available.Where(p => p != KernelPath.Scalar);

    [GlobalSetup]
    public void Setup()
    {
        _w = new KernelData(Type, Rows, Cols);
        _interleaved = InterleavedRows.Create(_w.Matrix);
        _matrix = _w.Matrix with { Interleaved = _interleaved };
        _pool = new KernelPool(1);
        _matmul = new MatMul(_pool);
        _x = new float[Tokens * Cols];
        KernelData.Fill(new Random(3), _x, 1f);
        _y = new float[Tokens * Rows];
        _forced = KernelPaths.Force(Path);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _forced?.Dispose();
        _pool.Dispose();
        _interleaved.Dispose();
        _w.Dispose();
    }

    [Benchmark]
    public void Multiply() => _matmul.Multiply(_matrix, _x, Tokens, _y);
}
