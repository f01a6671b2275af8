using BenchmarkDotNet.Attributes;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>One weight row · one quantized activation row (the inner kernel of every matmul), 4096 elements.</summary>
[MemoryDiagnoser]
public class VecDotBenchmarks
{
    private const int N = 4096;
    private KernelData _w = null!;
    private byte[] _act = null!;

    [Params(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _w = new KernelData(Type, 1, N);
        var x = new float[N];
        KernelData.Fill(new Random(1), x, 1f);
        var actType = GgmlTypes.VecDotType(Type);
        _act = new byte[GgmlTypes.RowBytes(actType, N)];
        Quantize.Row(actType, x, _act);
    }

    [GlobalCleanup]
    public void Cleanup() => _w.Dispose();

    [Benchmark]
    public unsafe float Dot() => VecDot.Dot(Type, new ReadOnlySpan<byte>(_w.Weights, _w.RowBytes), _act, N);
}
