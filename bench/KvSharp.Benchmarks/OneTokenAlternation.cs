using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// <see cref="OneTokenStreamBenchmarks"/>' variants alternated in one process, for a shared or noisy machine where only
/// ratios mean anything: every round times each variant once (two tokens), in an order that rotates per round, and the
/// report is the median over rounds of (first variant's time / this variant's time), so above 1 is faster than the first.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- alternate 200 1 Q4_0 Avx2 Avx512Pair LoadOnly
/// </code>
/// (rounds, threads, weight type, then the variants; the first is the base.)
/// </summary>
internal static class OneTokenAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 6)
            throw new ArgumentException("alternate: expected ROUNDS THREADS TYPE BASE VARIANT..., e.g. alternate 200 1 Q4_0 Avx2 LoadOnly");
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]);
        var type = Enum.Parse<GgmlType>(args[3]);
        var variants = args.Skip(4).Select(Enum.Parse<OneTokenVariant>).ToArray();
        var bench = new OneTokenStreamBenchmarks { Type = type, Threads = threads, Variant = variants[0] };
        bench.Setup();
        try
        {
            foreach (var v in variants) bench.CheckSameBits(v);
            var ms = variants.Select(_ => new double[rounds]).ToArray();
            for (int warm = 0; warm < 5; warm++)
                foreach (var v in variants) Time(bench, v);
            for (int r = 0; r < rounds; r++)
                for (int j = 0; j < variants.Length; j++)
                {
                    int i = (j + r) % variants.Length;
                    ms[i][r] = Time(bench, variants[i]);
                }
            Console.WriteLine($"{type}, {threads} thread(s), AVX-512 {(KernelPaths.IsAvailable(KernelPath.Avx512) ? "on" : "off")}, {rounds} rounds; base {variants[0]}: median {Median(ms[0]):F2} ms");
            for (int i = 1; i < variants.Length; i++)
                Console.WriteLine($"  {variants[i],-24} {Median([.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[i][r])]):F3}x  (median {Median(ms[i]):F2} ms)");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    private static double Time(OneTokenStreamBenchmarks bench, OneTokenVariant variant)
    {
        bench.Variant = variant;
        long start = Stopwatch.GetTimestamp();
        bench.Token();
        bench.Token();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static double Median(double[] x)
    {
        var sorted = x.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
