using System.Diagnostics;
using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// The widened F16 kernels alone (<see cref="VecDotAvx512Widened"/> four rows by four tokens,
/// <see cref="VecDotAvx2Widened"/> three by four) on rows already widened, with each operand either the same rows every
/// call (hot in L1) or cycling through SETS sets of rows (from L2 or beyond): what the kernel does when its data is
/// near, and what it loses when the weight rows, the activation rows or both have to come from further away.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- widened 768 40
/// </code>
/// (columns, sets: 40 sets of four 768-column rows are 480 KiB per operand, within a Zen 5 core's 1 MiB L2.)
/// </summary>
internal static unsafe class WidenedKernelProbe
{
    public static void Run(string[] args)
    {
        int cols = int.Parse(args[1]), sets = int.Parse(args[2]);
        int stride = WidenedRows.Stride(cols);
        long floats = (long)sets * 4 * stride;
        float* w = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        float* y = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        try
        {
            var rng = new Random(1);
            for (long i = 0; i < floats; i++) (w[i], y[i]) = ((float)rng.NextDouble(), (float)rng.NextDouble());
            float* result = stackalloc float[16];
            var kernels = new List<(string Name, int Outputs, nint Kernel)>();
            if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) kernels.Add(("avx512 4x4", 16, (nint)(delegate*<float*, int, byte*, nint, int, float*, void>)&VecDotAvx512Widened.Dot4x4F16));
            kernels.Add(("avx2 3x4", 12, (nint)(delegate*<float*, int, byte*, nint, int, float*, void>)&VecDotAvx2Widened.Dot3x4F16));
            const int Calls = 200_000;
            for (int round = 0; round < 3; round++)
                foreach (var (name, outputs, k) in kernels)
                    foreach (var (where, ws, ys) in new[] { ("both hot", 0, 0), ("weights cycle", 1, 0), ("activations cycle", 0, 1), ("both cycle", 1, 1) })
                    {
                        var kernel = (delegate*<float*, int, byte*, nint, int, float*, void>)k;
                        var clock = Stopwatch.StartNew();
                        for (int i = 0; i < Calls; i++)
                        {
                            long s = i % sets * 4L * stride;
                            kernel(w + ws * s, stride, (byte*)(y + ys * s), stride * sizeof(float), cols, result);
                        }
                        double ns = clock.Elapsed.TotalNanoseconds / Calls;
                        Console.WriteLine($"round {round + 1}: {name}, {cols} columns, {where}: {ns:F1} ns a call, {(double)outputs * cols / ns:F1} multiply-adds/ns");
                    }
        }
        finally
        {
            NativeMemory.AlignedFree(w);
            NativeMemory.AlignedFree(y);
        }
    }
}
