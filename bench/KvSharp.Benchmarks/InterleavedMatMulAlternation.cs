using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// <see cref="MatMul"/> over a matrix with <see cref="WeightMatrix.Interleaved"/> against the same matrix without it
/// (the single-row and four-token kernels), same activations, on a one-thread pool, alternated in one process (see
/// <see cref="FourTokenAlternation.Alternate"/> for the report); the outputs are checked bit-identical first.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- interleaved 41 IQ4_NL 2048x2048 8
/// </code>
/// (rounds, weight type, rows x columns, tokens: 1 times the decode kernels, 4 or more prefill's.) A sixth argument
/// <c>paths</c> instead alternates the interleaved matrix on the AVX2 kernels against the default path (AVX-512 where
/// the type has kernels there), or on the two paths named after it (KVSHARP_ISA's names):
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- interleaved 41 IQ4_NL 2048x768 8 paths
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- interleaved 41 Q4_0 2048x768 8 paths avx512 avx2-vnni
/// </code>
/// </summary>
internal static unsafe class InterleavedMatMulAlternation
{
    public static void Run(string[] args)
    {
        if (args.Length < 5)
            throw new ArgumentException("interleaved: expected ROUNDS TYPE ROWSxCOLS TOKENS, e.g. interleaved 41 IQ4_NL 2048x2048 8");
        int rounds = int.Parse(args[1]), tokens = int.Parse(args[4]);
        var type = Enum.Parse<GgmlType>(args[2]);
        int rows = int.Parse(args[3].Split('x')[0]), cols = int.Parse(args[3].Split('x')[1]);
        var rng = new Random(1);
        int wRow = (int)GgmlTypes.RowBytes(type, cols);
        byte* w = (byte*)NativeMemory.AlignedAlloc((nuint)((long)wRow * rows), 64);
        try
        {
            float[] row = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++) row[c] = (float)(rng.NextDouble() * 2 - 1);
                Quantize.Row(type, row, new Span<byte>(w + (long)r * wRow, wRow));
            }
            var plain = new WeightMatrix(type, rows, cols, w);
            using var interleavedRows = InterleavedRows.Create(plain);
            var interleaved = plain with { Interleaved = interleavedRows };
            float[] x = [.. Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
            float[] yp = new float[tokens * rows], yi = new float[tokens * rows];
            using var pool = new KernelPool(1);
            var matMul = new MatMul(pool);
            matMul.Multiply(plain, x, tokens, yp);
            matMul.Multiply(interleaved, x, tokens, yi);
            for (int i = 0; i < yp.Length; i++)
                if (BitConverter.SingleToInt32Bits(yp[i]) != BitConverter.SingleToInt32Bits(yi[i]))
                    throw new InvalidOperationException($"interleaved: output {i} differs: {yi[i]:R} vs {yp[i]:R}");
            if (args.Length > 7 && args[5] == "paths")
            {
                KernelPath a = KernelPaths.Parse(args[6], "interleaved paths"), b = KernelPaths.Parse(args[7], "interleaved paths");
                using (KernelPaths.Force(a)) matMul.Multiply(interleaved, x, tokens, yp);
                using (KernelPaths.Force(b)) matMul.Multiply(interleaved, x, tokens, yi);
                if (!yp.AsSpan().SequenceEqual(yi))
                    throw new InvalidOperationException($"interleaved: {args[6]} and {args[7]} give different outputs");
                FourTokenAlternation.Alternate($"{type} {rows}x{cols}, {tokens} token(s), {KernelPaths.Name(a)} against {KernelPaths.Name(b)}", rounds,
                    () => { using (KernelPaths.Force(a)) matMul.Multiply(interleaved, x, tokens, yp); },
                    () => { using (KernelPaths.Force(b)) matMul.Multiply(interleaved, x, tokens, yi); }, $"{KernelPaths.Name(a)} / {KernelPaths.Name(b)}");
                return;
            }
            if (args.Length > 5 && args[5] == "paths")
            {
                FourTokenAlternation.Alternate($"{type} {rows}x{cols}, {tokens} token(s), default path {KernelPaths.Describe(type)}", rounds,
                    () => { using (KernelPaths.Force(KernelPath.Avx2)) matMul.Multiply(interleaved, x, tokens, yp); },
                    () => matMul.Multiply(interleaved, x, tokens, yi), "avx2 / default");
                return;
            }
            FourTokenAlternation.Alternate($"{type} {rows}x{cols}, {tokens} token(s)", rounds,
                () => matMul.Multiply(plain, x, tokens, yp), () => matMul.Multiply(interleaved, x, tokens, yi), "plain / interleaved");
        }
        finally
        {
            NativeMemory.AlignedFree(w);
        }
    }
}
