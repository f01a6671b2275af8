using System.Diagnostics;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// KIVI codes widened to floats (<see cref="KiviCodes.Dequantize(ref byte, int, int, int, ref float, ref float, ref float, int)"/>)
/// sixteen against eight channels at a time, in one process, passes alternated: 4,096 rows of head_dim 64 (in L2), with
/// a scale and min per channel (keys) and per group of 32 channels (values).
/// <code>
/// dotnet bench/KvSharp.Benchmarks/bin/Release/net10.0/KvSharp.Benchmarks.dll kivi-codes 4
/// </code>
/// (bits: 4 or 2.)
/// </summary>
internal static class KiviCodesAlternation
{
    private const int Rows = 4096, HeadDim = 64, PassesPerTime = 20;

    public static void Run(string[] args)
    {
        int bits = int.Parse(args[1]), rowBytes = HeadDim * bits / 8;
        if (KiviCodes.Widest(bits) < 16) throw new InvalidOperationException("sixteen at a time needs AVX-512");
        var codes = new byte[Rows * rowBytes];
        new Random(1).NextBytes(codes);
        float[] scales = [.. Enumerable.Range(0, HeadDim).Select(i => 0.01f * (i + 1))];
        float[] mins = [.. Enumerable.Range(0, HeadDim).Select(i => -0.3f + i * 0.001f)];
        var rows = new float[Rows * HeadDim];

        double Time(int width, bool perChannel)
        {
            long start = Stopwatch.GetTimestamp();
            for (int pass = 0; pass < PassesPerTime; pass++)
                for (int r = 0; r < Rows; r++)
                {
                    ref byte row = ref codes[r * rowBytes];
                    if (perChannel) KiviCodes.Dequantize(ref row, 0, HeadDim, bits, ref scales[0], ref mins[0], ref rows[r * HeadDim], width);
                    else
                        for (int g = 0; g < HeadDim; g += 32) KiviCodes.Dequantize(ref row, g, g + 32, bits, scales[g], mins[g], ref rows[r * HeadDim], width);
                }
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        // Tiered compilation settles first.
        for (var warm = Stopwatch.StartNew(); warm.Elapsed.TotalSeconds < 2;)
            foreach (int width in new[] { 16, 8 }) { Time(width, true); Time(width, false); }
        foreach (bool perChannel in new[] { true, false })
        {
            var (wide, narrow) = (new List<double>(), new List<double>());
            for (int i = 0; i < 21; i++)
            {
                wide.Add(Time(16, perChannel));
                narrow.Add(Time(8, perChannel));
            }
            double w = Median(wide), n = Median(narrow);
            Console.WriteLine($"{bits}-bit codes, {(perChannel ? "a scale per channel" : "a scale per 32 channels")}: 16 at a time {w:F3} ms, " +
                $"8 at a time {n:F3} ms; 16 / 8 = {w / n:F3}");
        }
    }

    private static double Median(List<double> x) => x.Order().ElementAt(x.Count / 2);
}
