using System.Diagnostics;
using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// A type's four-token row kernel (<see cref="VecDot.Kernel4"/>) against its single-token kernel over the same matrix,
/// alternated in one process on one thread: each round times both (order alternating), each over
/// <see cref="Passes"/> passes of every row by TOKENS tokens, row after row as <see cref="MatMul"/> walks a tile, and
/// the report is the median over rounds of (single time / four-token time), so above 1 is faster. Checks first that both give the same bits.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- four-token 40 IQ4_XS 2048 2048 8
/// </code>
/// (rounds, weight type, rows, columns, tokens.)
/// </summary>
internal static unsafe class FourTokenAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length != 6)
            throw new ArgumentException("four-token: expected ROUNDS TYPE ROWS COLS TOKENS, e.g. four-token 40 IQ4_XS 2048 2048 8");
        int rounds = int.Parse(args[1]), rows = int.Parse(args[3]), cols = int.Parse(args[4]), tokens = int.Parse(args[5]);
        var type = Enum.Parse<GgmlType>(args[2]);
        var kernel4 = VecDot.Kernel4(type, avx2: true);
        if (kernel4 == null) throw new ArgumentException($"four-token: {type} has no four-token kernel");
        var kernel = VecDot.Kernel(type, avx2: true);
        using var data = new KernelData(type, rows, cols);
        GgmlType at = GgmlTypes.VecDotType(type);
        int ab = (int)GgmlTypes.RowBytes(at, cols);
        byte* act = (byte*)NativeMemory.AlignedAlloc((nuint)(ab * tokens), 64);
        float* single = (float*)NativeMemory.AlignedAlloc((nuint)(4 * rows * tokens), 64), four = (float*)NativeMemory.AlignedAlloc((nuint)(4 * rows * tokens), 64);
        try
        {
            var rng = new Random(7);
            var x = new float[cols];
            for (int t = 0; t < tokens; t++)
            {
                KernelData.Fill(rng, x, 1f);
                Quantize.Row(at, x, new Span<byte>(act + t * ab, ab));
            }
            void Single()
            {
                for (int r = 0; r < rows; r++)
                    for (int t = 0; t < tokens; t++)
                        single[t * rows + r] = kernel(data.Weights + (long)r * data.RowBytes, act + t * ab, cols);
            }
            void Four()
            {
                float* res = stackalloc float[4];
                for (int r = 0; r < rows; r++)
                {
                    byte* w = data.Weights + (long)r * data.RowBytes;
                    int t = 0;
                    for (; t + 4 <= tokens; t += 4)
                    {
                        kernel4(w, act + t * ab, ab, cols, res);
                        for (int k = 0; k < 4; k++) four[(t + k) * rows + r] = res[k];
                    }
                    for (; t < tokens; t++) four[t * rows + r] = kernel(w, act + t * ab, cols);
                }
            }
            Single();
            Four();
            for (int i = 0; i < rows * tokens; i++)
                if (BitConverter.SingleToInt32Bits(single[i]) != BitConverter.SingleToInt32Bits(four[i]))
                    throw new InvalidOperationException($"four-token: output {i} differs: {four[i]:R} vs {single[i]:R}");
            var ratio = new double[rounds];
            double[] single1 = new double[rounds], four1 = new double[rounds];
            for (int warm = 0; warm < 10; warm++) { Single(); Four(); }
            for (int r = 0; r < rounds; r++)
            {
                double a, b;
                if (r % 2 == 0) { a = Time(Single); b = Time(Four); }
                else { b = Time(Four); a = Time(Single); }
                ratio[r] = a / b;
                single1[r] = a;
                four1[r] = b;
            }
            Array.Sort(ratio);
            Array.Sort(single1);
            Array.Sort(four1);
            Console.WriteLine($"{type} {rows}x{cols}, {tokens} tokens, {rounds} rounds: single / four-token time, median {ratio[rounds / 2]:F3}x (quartiles {ratio[rounds / 4]:F3}-{ratio[3 * rounds / 4]:F3}; medians {single1[rounds / 2]:F2} / {four1[rounds / 2]:F2} ms, {Passes} passes)");
        }
        finally
        {
            NativeMemory.AlignedFree(act);
            NativeMemory.AlignedFree(single);
            NativeMemory.AlignedFree(four);
        }
    }

    /// <summary>Passes per timing: a few milliseconds, so a round is not one scheduler slice.</summary>
    private const int Passes = 8;

    private static double Time(Action pass)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < Passes; i++) pass();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
