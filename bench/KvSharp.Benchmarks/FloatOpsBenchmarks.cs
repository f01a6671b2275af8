using BenchmarkDotNet.Attributes;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>The element-wise kernels of a layer on one 4096-wide row (llama-7B width) or 8192 (SwiGLU's ffn width).</summary>
[MemoryDiagnoser]
public class FloatOpsBenchmarks
{
    private readonly float[] _x = new float[4096], _w = new float[4096], _dst = new float[4096];
    private readonly float[] _gateSource = new float[8192], _gate = new float[8192], _up = new float[8192], _scores = new float[4096];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(5);
        KernelData.Fill(rng, _x, 1f);
        KernelData.Fill(rng, _w, 1f);
        KernelData.Fill(rng, _up, 1f);
        KernelData.Fill(rng, _gateSource, 1f);
        KernelData.Fill(rng, _scores, 4f);
    }

    [Benchmark]
    public void RmsNorm() => FloatOps.RmsNorm(_x, _w, 1e-5f, _dst);

    [Benchmark]
    public void SwiGlu()
    {
        _gateSource.AsSpan().CopyTo(_gate); // SwiGlu overwrites the gate; every call sees the same input
        FloatOps.SwiGlu(_gate, _up);
    }

    [Benchmark]
    public void Softmax()
    {
        _scores.AsSpan().CopyTo(_dst);
        FloatOps.Softmax(_dst);
    }
}
