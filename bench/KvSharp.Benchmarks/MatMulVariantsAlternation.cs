using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Several ways of running one product side by side in one process: an MXFP4 matrix through <see cref="MatMul"/>
/// without its interleaved copy (the row kernels), with it on each SIMD path this machine has (forced, and the default),
/// and an IQ4_NL matrix of the same weights interleaved on its default path for comparison. Each round runs every
/// variant once, the order rotated from round to round; reported are each variant's median wall time and the median of
/// the per-round ratios of the plain MXFP4 time to it. The MXFP4 variants' outputs are checked bit-identical first.
/// Arguments: rounds, rows x columns, tokens, threads (`-- variants 301 2880x2880 1 2`).
/// </summary>
internal static class MatMulVariantsAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 5) throw new ArgumentException("variants: expected ROUNDS ROWSxCOLS TOKENS THREADS, e.g. variants 301 2880x2880 1 2");
        int rounds = int.Parse(args[1]), tokens = int.Parse(args[3]), threads = int.Parse(args[4]);
        string[] shape = args[2].Split('x');
        int rows = int.Parse(shape[0]), cols = int.Parse(shape[1]);
        var rng = new Random(5);
        float[] x = new float[tokens * cols];
        KernelData.Fill(rng, x, 1f);
        using var mxfp4 = new KernelData(GgmlType.MXFP4, rows, cols); // the same seeded weights, quantized two ways
        using var iq4 = new KernelData(GgmlType.IQ4_NL, rows, cols);
        using var mxfp4Copy = InterleavedRows.Create(mxfp4.Matrix);
        using var iq4Copy = InterleavedRows.Create(iq4.Matrix);
        WeightMatrix plain = mxfp4.Matrix, interleaved = plain with { Interleaved = mxfp4Copy }, iq4Interleaved = iq4.Matrix with { Interleaved = iq4Copy };
        using var pool = new KernelPool(threads);
        var matMul = new MatMul(pool);
        float[] y = new float[tokens * rows], want = new float[tokens * rows];

        var variants = new List<(string Name, Action Run)> { ("MXFP4 plain (row kernels)", () => matMul.Multiply(plain, x, tokens, y)) };
        foreach (var path in KernelPaths.Available.Where(p => p != KernelPath.Scalar))
            variants.Add(($"MXFP4 interleaved, {KernelPaths.Name(path)}", () => { using (KernelPaths.Force(path)) matMul.Multiply(interleaved, x, tokens, y); }));
        variants.Add(($"MXFP4 interleaved, default ({KernelPaths.Name(KernelPaths.For(GgmlType.MXFP4, null, tokens))})", () => matMul.Multiply(interleaved, x, tokens, y)));
        variants.Add(($"IQ4_NL interleaved, default ({KernelPaths.Name(KernelPaths.For(GgmlType.IQ4_NL, null, tokens))})", () => matMul.Multiply(iq4Interleaved, x, tokens, y)));

        matMul.Multiply(plain, x, tokens, want);
        foreach (var (name, run) in variants.SkipLast(1))
        {
            run();
            if (!y.AsSpan().SequenceEqual(want)) throw new InvalidOperationException($"variants: {name} gives other bits than the plain MXFP4 product");
        }

        long warmStart = Stopwatch.GetTimestamp();
        while (!FourTokenAlternation.Warm(warmStart))
            foreach (var v in variants) v.Run();
        int n = variants.Count;
        double[][] ms = [.. Enumerable.Range(0, n).Select(_ => new double[rounds])];
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < n; j++)
            {
                int k = (r + j) % n;
                long start = Stopwatch.GetTimestamp();
                variants[k].Run();
                ms[k][r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        Console.WriteLine($"{rows}x{cols}, {tokens} token(s), {threads} thread(s), {rounds} rounds, {Environment.ProcessorCount} CPUs:");
        for (int k = 0; k < n; k++)
        {
            double[] ratio = [.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[k][r])];
            Console.WriteLine($"  {variants[k].Name,-40} median {Median(ms[k]),9:F4} ms (q1 {Quantile(ms[k], 0.25):F4}, q3 {Quantile(ms[k], 0.75):F4}); plain / this {Median(ratio):F2}x");
        }
    }

    private static double Median(double[] v) => Quantile(v, 0.5);

    private static double Quantile(double[] v, double q)
    {
        double[] s = [.. v.Order()];
        return s[(int)Math.Round(q * (s.Length - 1))];
    }
}
