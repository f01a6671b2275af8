using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// <see cref="OneTokenStreamBenchmarks"/>' variants alternated in one process, for a shared or noisy machine where only
/// ratios mean anything: every round times each variant once (two tokens), in an order that rotates per round, and the
/// report is the median over rounds of (first variant's time / this variant's time), so above 1 is faster than the first.
/// Each timing follows an untimed token of the same variant, as decode does: the order rotates but stays cyclic, and
/// what the last-level cache keeps of the previous pass (part of 62 MB of Q4_0 weights in a 32 MB L3) depends on who
/// read what. Without it, a variant that followed one over the same copy of the weights gained up to 1.3x on one that
/// followed a variant over another copy; after a pass over an unrelated buffer instead (weights cold in L3), the
/// cheaper Q4_0 kernels read as 0.90-0.94x of the old (2026-12-06, shared Zen 4).
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- alternate 200 1 Q4_0 Avx2 Avx512Pair LoadOnly
/// </code>
/// (rounds, threads, weight type, then the variants; the first is the base.) A type written TYPE:l2 (Q4_0:l2) times
/// the variants over one matrix that stays in L2 (<see cref="OneTokenStreamBenchmarks.InCache"/>): arithmetic alone.
/// </summary>
internal static class OneTokenAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 6)
            throw new ArgumentException("alternate: expected ROUNDS THREADS TYPE BASE VARIANT..., e.g. alternate 200 1 Q4_0 Avx2 LoadOnly");
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]);
        bool inCache = args[3].EndsWith(":l2", StringComparison.Ordinal);
        var type = Enum.Parse<GgmlType>(inCache ? args[3][..^3] : args[3]);
        var variants = args.Skip(4).Select(Enum.Parse<OneTokenVariant>).ToArray();
        var bench = new OneTokenStreamBenchmarks { Type = type, Threads = threads, Variant = variants[0], InCache = inCache };
        bench.Setup();
        try
        {
            foreach (var v in variants) bench.CheckSameBits(v);
            if (File.Exists("/proc/self/smaps_rollup"))
                Console.WriteLine(File.ReadLines("/proc/self/smaps_rollup").FirstOrDefault(l => l.StartsWith("AnonHugePages", StringComparison.Ordinal)));
            var ms = variants.Select(_ => new double[rounds]).ToArray();
            var cpu = variants.Select(_ => new double[rounds]).ToArray();
            // Untimed until the kernels have left tier 0 (FourTokenAlternation.WarmUp).
            long warmStart = Stopwatch.GetTimestamp();
            for (int warm = 0; warm < 5 || !FourTokenAlternation.Warm(warmStart); warm++)
                foreach (var v in variants) Time(bench, v, out _);
            for (int r = 0; r < rounds; r++)
                for (int j = 0; j < variants.Length; j++)
                {
                    int i = (j + r) % variants.Length;
                    ms[i][r] = Time(bench, variants[i], out cpu[i][r]);
                }
            Console.WriteLine($"{type}{(inCache ? " in L2" : "")}, {threads} thread(s), AVX-512 {(KernelPaths.IsAvailable(KernelPath.Avx512) ? "on" : "off")}, {rounds} rounds; base {variants[0]}: median {Median(ms[0]):F2} ms");
            for (int i = 1; i < variants.Length; i++)
                Console.WriteLine($"  {variants[i],-24} {Median([.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[i][r])]):F3}x  (median {Median(ms[i]):F2} ms)"
                    + (threads == 1 ? $"; thread CPU time {Median([.. Enumerable.Range(0, rounds).Select(r => cpu[0][r] / cpu[i][r])]):F3}x" : ""));
        }
        finally
        {
            bench.Cleanup();
        }
    }

    /// <summary>
    /// Wall milliseconds of two tokens, and (<paramref name="cpuMs"/>) the calling thread's CPU milliseconds over them:
    /// on one thread the pool runs inline, so that time leaves out the time the thread waited for a core on a shared
    /// machine (Linux; elsewhere 1).
    /// </summary>
    private static double Time(OneTokenStreamBenchmarks bench, OneTokenVariant variant, out double cpuMs)
    {
        bench.Variant = variant;
        bench.Token();
        double cpu0 = ThreadCpuMs();
        long start = Stopwatch.GetTimestamp();
        bench.Token();
        bench.Token();
        double wall = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        cpuMs = ThreadCpuMs() - cpu0;
        return wall;
    }

    internal static double ThreadCpuMs()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        Span<long> ts = stackalloc long[2];
        unsafe
        {
            fixed (long* p = ts)
                if (ClockGetTime(3 /* CLOCK_THREAD_CPUTIME_ID */, p) != 0) return 0;
        }
        return ts[0] * 1e3 + ts[1] / 1e6;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern unsafe int ClockGetTime(int clock, long* timespec);

    private static double Median(double[] x)
    {
        var sorted = x.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
