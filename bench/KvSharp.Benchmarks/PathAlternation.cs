using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// One weight type's products on each SIMD path this machine has (forced), side by side in one process: COUNT
/// matrices of ROWS x COLS (in one slab on huge pages, enough of them that their weights stream from memory, as in decode: 64 x 2048x768 F16 is
/// 201 MB, about the `small` shape's 219 MB), each round running every path once over all of them in an order rotated
/// per round. Reported: each path's median wall time per round and the median of the per-round ratios of the first
/// path's time to it (above 1 is faster). The paths' outputs are checked bit-identical first, as the tests do.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- paths 101 2048x768 1 2 F16 64
/// </code>
/// (rounds, rows x columns, tokens, threads, weight type, matrices.) Types a model load interleaves
/// (<see cref="InterleavedRows.Supports"/>) get their interleaved copy, as there.
/// </summary>
internal static unsafe class PathAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 7) throw new ArgumentException("paths: expected ROUNDS ROWSxCOLS TOKENS THREADS TYPE COUNT, e.g. paths 101 2048x768 1 2 F16 64");
        int rounds = int.Parse(args[1]), tokens = int.Parse(args[3]), threads = int.Parse(args[4]), count = int.Parse(args[6]);
        var type = Enum.Parse<GgmlType>(args[5], ignoreCase: true);
        string[] shape = args[2].Split('x');
        int rows = int.Parse(shape[0]), cols = int.Parse(shape[1]);
        float[] x = new float[tokens * cols];
        KernelData.Fill(new Random(5), x, 1f);
        // One slab on huge pages holding the matrices back to back, as a loaded model's weights are.
        long matrixBytes = GgmlTypes.RowBytes(type, cols) * rows, stride = (matrixBytes + 63) & ~63L;
        byte* slab = HugePageMemory.Allocate(stride * count);
        var matrices = new WeightMatrix[count];
        for (int i = 0; i < count; i++)
        {
            using var d = new KernelData(type, rows, cols, seed: 100 + i);
            Buffer.MemoryCopy(d.Weights, slab + i * stride, matrixBytes, matrixBytes);
            matrices[i] = new WeightMatrix(type, rows, cols, slab + i * stride);
            // As a model load does: the interleaved copy is what the SIMD kernels read.
            if (InterleavedRows.Supports(type)) matrices[i] = matrices[i] with { Interleaved = InterleavedRows.Create(matrices[i]) };
        }
        try
        {
            using var pool = new KernelPool(threads);
            var matMul = new MatMul(pool);
            float[] y = new float[tokens * rows], want = new float[tokens * rows];
            var paths = KernelPaths.Available.Where(p => p != KernelPath.Scalar).ToArray();
            void RunAll(KernelPath path)
            {
                using (KernelPaths.Force(path))
                    foreach (var m in matrices) matMul.Multiply(m, x, tokens, y);
            }
            using (KernelPaths.Force(paths[0])) matMul.Multiply(matrices[0], x, tokens, want);
            foreach (var path in paths)
            {
                using (KernelPaths.Force(path)) matMul.Multiply(matrices[0], x, tokens, y);
                if (!y.AsSpan().SequenceEqual(want)) throw new InvalidOperationException($"paths: {KernelPaths.Name(path)} gives other bits than {KernelPaths.Name(paths[0])}");
            }
            long warmStart = Stopwatch.GetTimestamp();
            while (!FourTokenAlternation.Warm(warmStart))
                foreach (var p in paths) RunAll(p);
            int n = paths.Length;
            double[][] ms = [.. Enumerable.Range(0, n).Select(_ => new double[rounds])];
            for (int r = 0; r < rounds; r++)
                for (int j = 0; j < n; j++)
                {
                    int k = (r + j) % n;
                    long start = Stopwatch.GetTimestamp();
                    RunAll(paths[k]);
                    ms[k][r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            double mb = count * (double)GgmlTypes.RowBytes(type, cols) * rows / 1e6;
            Console.WriteLine($"{type} {count} x {rows}x{cols} ({mb:F0} MB), {tokens} token(s), {threads} thread(s), {rounds} rounds, {Environment.ProcessorCount} CPUs:");
            for (int k = 0; k < n; k++)
            {
                double[] ratio = [.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[k][r])];
                Console.WriteLine($"  {KernelPaths.Name(paths[k]),-10} median {Median(ms[k]),9:F3} ms ({mb / Median(ms[k]):F1} GB/s); {KernelPaths.Name(paths[0])} / this {Median(ratio):F2}x");
            }
        }
        finally
        {
            foreach (var m in matrices) m.Interleaved?.Dispose();
            HugePageMemory.Free(slab);
        }
    }

    private static double Median(double[] v) => v.Order().ElementAt(v.Length / 2);
}
