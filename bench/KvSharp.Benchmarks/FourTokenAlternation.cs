using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// A type's four-token kernel (<see cref="VecDot.Kernel4"/>) against its single-token kernel over the same matrix and
/// activations, alternated in one process on one thread, for a shared machine where only ratios mean anything: each
/// round times both (order alternating), and the report is the median over rounds of single / four-token time, with
/// the quartiles. Tokens go as <see cref="MatMul"/> takes them: in tiles of eight, four at a time, the rest one by one.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- four-tokens 41 IQ4_XS 2048x2048 8
/// </code>
/// (rounds, weight type, rows x columns, tokens.)
/// </summary>
internal static unsafe class FourTokenAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 5)
            throw new ArgumentException("four-tokens: expected ROUNDS TYPE ROWSxCOLS TOKENS, e.g. four-tokens 41 IQ4_XS 2048x2048 8");
        int rounds = int.Parse(args[1]), tokens = int.Parse(args[4]);
        var type = Enum.Parse<GgmlType>(args[2]);
        int rows = int.Parse(args[3].Split('x')[0]), cols = int.Parse(args[3].Split('x')[1]);
        var k1 = VecDot.Kernel(type, avx2: true);
        var k4 = VecDot.Kernel4(type, avx2: true);
        if (k4 == null) throw new ArgumentException($"four-tokens: {type} has no four-token kernel");
        var rng = new Random(1);
        float[] wf = new float[(long)rows * cols];
        for (int i = 0; i < wf.Length; i++) wf[i] = (float)(rng.NextDouble() * 2 - 1);
        byte[] w = new byte[GgmlTypes.RowBytes(type, cols) * rows];
        Quantize.Row(type, wf, w);
        GgmlType at = GgmlTypes.VecDotType(type);
        int wRow = (int)GgmlTypes.RowBytes(type, cols), aRow = (int)GgmlTypes.RowBytes(at, cols);
        byte[] a = new byte[aRow * tokens];
        for (int t = 0; t < tokens; t++)
            Quantize.Row(at, [.. Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() * 2 - 1))], a.AsSpan(t * aRow, aRow));
        float[] y1 = new float[rows * tokens], y4 = new float[rows * tokens];
        fixed (byte* pw = w, pa = a)
        fixed (float* p1 = y1, p4 = y4)
        {
            byte* wp = pw, ap = pa;
            float* o1 = p1, o4 = p4;
            void Single()
            {
                for (int r = 0; r < rows; r++)
                    for (int t = 0; t < tokens; t++) o1[t * rows + r] = k1(wp + (long)r * wRow, ap + t * aRow, cols);
            }
            void Four()
            {
                float* res = stackalloc float[4];
                for (int t0 = 0; t0 < tokens; t0 += 8)
                {
                    int t1 = Math.Min(tokens, t0 + 8);
                    for (int r = 0; r < rows; r++)
                    {
                        int t = t0;
                        for (; t + 4 <= t1; t += 4)
                        {
                            k4(wp + (long)r * wRow, ap + t * aRow, aRow, cols, res);
                            for (int k = 0; k < 4; k++) o4[(t + k) * rows + r] = res[k];
                        }
                        for (; t < t1; t++) o4[t * rows + r] = k1(wp + (long)r * wRow, ap + t * aRow, cols);
                    }
                }
            }
            Single();
            Four();
            for (int i = 0; i < y1.Length; i++)
                if (BitConverter.SingleToInt32Bits(y1[i]) != BitConverter.SingleToInt32Bits(y4[i]))
                    throw new InvalidOperationException($"four-tokens: output {i} differs: {y4[i]:R} vs {y1[i]:R}");
            Alternate($"{type} {rows}x{cols}, {tokens} tokens", rounds, Single, Four, "single / four-token");
        }
    }

    /// <summary>
    /// Times <paramref name="a"/> and <paramref name="b"/> once per round, the order alternating, after untimed runs of
    /// each for <see cref="WarmUp"/> (five at least), and prints the median and quartiles of the per-round ratios a / b
    /// (wall and thread CPU time).
    /// </summary>
    internal static void Alternate(string what, int rounds, Action a, Action b, string ratio)
    {
        long warmStart = Stopwatch.GetTimestamp();
        for (int warm = 0; warm < 5 || !Warm(warmStart); warm++) { a(); b(); }
        double[] wall = new double[rounds], cpu = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            double wa, ca, wb, cb;
            if (r % 2 == 0) { wa = Time(a, out ca); wb = Time(b, out cb); }
            else { wb = Time(b, out cb); wa = Time(a, out ca); }
            wall[r] = wa / wb;
            cpu[r] = ca / cb;
        }
        Console.WriteLine($"{what}, {rounds} rounds, AVX-512 {(KernelPaths.IsAvailable(KernelPath.Avx512) ? "on" : "off")}, " +
            $"{ratio}: wall time {Quartiles(wall)}; thread CPU time {Quartiles(cpu)}");
    }

    /// <summary>
    /// How long the untimed runs go on: long enough for tiered compilation to move the kernels to tier 1 (it starts
    /// counting calls after 100 ms, then compiles in the background). With five runs only, a small matrix's rounds
    /// timed tier-0 code unless DOTNET_TieredCompilation=0 was set (fourteenth session; `DOTNET_JitDisasmSummary=1`
    /// lists what ran).
    /// </summary>
    internal static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    /// <summary>Whether untimed runs begun at <paramref name="start"/> (a Stopwatch timestamp) have gone on for <see cref="WarmUp"/>.</summary>
    internal static bool Warm(long start) => Stopwatch.GetElapsedTime(start) >= WarmUp;

    /// <summary>Wall milliseconds of one run, and the calling thread's CPU milliseconds (leaves out waits for a core).</summary>
    private static double Time(Action run, out double cpuMs)
    {
        double cpu0 = OneTokenAlternation.ThreadCpuMs();
        long start = Stopwatch.GetTimestamp();
        run();
        double wall = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        cpuMs = OneTokenAlternation.ThreadCpuMs() - cpu0;
        return wall;
    }

    /// <summary>"median (quartiles q1-q3)" of per-round ratios.</summary>
    private static string Quartiles(double[] ratios)
    {
        var s = ratios.Order().ToArray();
        return $"median {s[s.Length / 2]:F3} (quartiles {s[s.Length / 4]:F3}-{s[3 * s.Length / 4]:F3})";
    }
}
