using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>Seeded random rows, quantized to a weight type, in native memory (as a memory-mapped model would be).</summary>
internal sealed unsafe class KernelData : IDisposable
{
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public byte* Weights { get; }
    public WeightMatrix Matrix => new(Type, Rows, Cols, Weights);
    public int RowBytes { get; }

    public KernelData(GgmlType type, int rows, int cols, int seed = 42)
    {
        Type = type;
        Rows = rows;
        Cols = cols;
        RowBytes = (int)GgmlTypes.RowBytes(type, cols);
        Weights = (byte*)NativeMemory.AlignedAlloc((nuint)((long)RowBytes * rows), 64);
        var rng = new Random(seed);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            Fill(rng, row, 1f / MathF.Sqrt(cols));
            Quantize.Row(type, row, new Span<byte>(Weights + (long)r * RowBytes, RowBytes));
        }
    }

    public static void Fill(Random rng, Span<float> x, float scale)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
    }

    public void Dispose() => NativeMemory.AlignedFree(Weights);
}
