using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Decode attention alone at depth, as the small model's decode runs it: 12 layers x 12 KV heads, one token's group
/// of queries per KV head over DEPTH contiguous positions, key and value rows in separate arrays of CAPACITY rows
/// per head (as ContiguousKvStorage allocates them), 73 MB of F32 rows at depth 990 and head_dim 64: well past L3, so
/// every pass streams them from memory. It alternates, round by round in a rotating order, a pass of the attention
/// (`attend`) with a plain vector sum over the same rows (`stream`, what reading them at memory speed costs), and
/// reports the median over rounds of attend's time / each variant's time: how far the attention is from the stream.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- decode-attention 40 1 990:2048 f32 attend stream
/// </code>
/// (rounds, threads, DEPTH[:CAPACITY[:HEAD_DIM[:GROUP]]], f32|f16|q8_0|q4_0, then the variants; the first is the
/// base; q8_0 and q4_0 rows carry a float scale per 32 elements in a side array, as ContiguousKvStorage keeps them.)
/// Found with it (2026-12-06, shared Zen 4, 1 thread): F32 decode attention at depth 990 took 1.8x a plain read of its
/// rows while F16 kept up with its own; ScoreEight read its eight keys 16 columns of each in turn, hopping between
/// rows 256 bytes apart, which the hardware prefetcher does not stream. Reading each key's row whole
/// (KeyScores.ReadRowByRow, same bits) measured, old vs new interleaved with a temporary switch, median of per-round
/// ratios: F32 head_dim 64 group 1 1.66-1.81x (4 processes x 20 rounds; 1.50x on 2 threads, 1.36x at depth 192 in
/// L3), group 2 1.20x, group 4 1.17x, head_dim 128 group 1 1.50x and group 4 1.27x; F16 head_dim 128 1.41x (group 1)
/// and 1.04x (group 4); F16 head_dim 64 is left in column order (row order measured 0.91-1.01x there). A software
/// prefetch of the next tile instead measured 0.84-0.96x (F32) and 0.61-0.64x (F16) in most processes; about one
/// process in three ran the old F32 path at half speed (some physical placement of the pages; the same virtual
/// layout), where the prefetch gave 1.5-1.7x.
/// </summary>
internal static class DecodeAttentionAlternation
{
    private const int Layers = 12, Heads = 12;

    public static void Run(string[] args)
    {
        if (args.Length < 6)
            throw new ArgumentException("decode-attention: expected ROUNDS THREADS DEPTH[:CAPACITY[:HEAD_DIM[:GROUP]]] f32|f16|q8_0|q4_0 VARIANT..., e.g. decode-attention 40 1 990:2048 f32 attend stream");
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]);
        int[] shape = [.. args[3].Split(':').Select(int.Parse)];
        int depth = shape[0], capacity = shape.Length > 1 ? shape[1] : depth, headDim = shape.Length > 2 ? shape[2] : 64, group = shape.Length > 3 ? shape[3] : 1;
        string kvType = args[4] is "f32" or "f16" or "q8_0" or "q4_0" ? args[4] : throw new ArgumentException($"decode-attention: KV type '{args[4]}' is not f32, f16, q8_0 or q4_0");
        bool half = kvType == "f16", q8 = kvType == "q8_0", q4 = kvType == "q4_0";
        string[] variants = args[5..];
        foreach (string v in variants)
            if (v is not ("attend" or "stream")) throw new ArgumentException($"decode-attention: variant '{v}' is not attend or stream");
        int width = group * headDim;
        double elementBytes = half ? 2 : q8 ? 1 : q4 ? 0.5 : 4;
        var rng = new Random(7);
        // [(layer x 2 + K|V) x heads + head], as ContiguousKvStorage lays them out.
        var rows = new byte[2 * Layers * Heads][];
        var scales = new byte[rows.Length][];
        for (int i = 0; i < rows.Length; i++)
        {
            if (q8 || q4)
            {
                var floats = MemoryMarshal.Cast<byte, float>(Rows(rng, capacity * headDim, depth * headDim, false).AsSpan());
                int rowBytes = q8 ? KvQ8.RowBytes(headDim) : KvQ4.RowBytes(headDim), sideBytes = q8 ? KvQ8.SideBytes(headDim) : KvQ4.SideBytes(headDim);
                rows[i] = new byte[capacity * rowBytes];
                scales[i] = new byte[capacity * sideBytes];
                for (int p = 0; p < capacity; p++)
                {
                    Span<byte> row = rows[i].AsSpan(p * rowBytes, rowBytes), side = scales[i].AsSpan(p * sideBytes, sideBytes);
                    if (q8) KvQ8.Write(floats.Slice(p * headDim, headDim), row, side);
                    else KvQ4.Write(floats.Slice(p * headDim, headDim), row, side);
                }
            }
            else rows[i] = Rows(rng, capacity * headDim, depth * headDim, half);
        }
        var queries = new float[Layers * Heads * width];
        foreach (ref float q in queries.AsSpan()) q = (float)(rng.NextDouble() * 2 - 1);
        var output = new float[queries.Length];
        float checksum = 0;

        void Head(int layer, int h)
        {
            int i = layer * Heads + h, k = layer * 2 * Heads + h, v = k + Heads;
            Span<float> scratch = stackalloc float[CausalAttention.ScratchLength(group)];
            var block = QueryBlock.Single(queries.AsSpan(i * width, width), output.AsSpan(i * width, width), group, headDim, depth);
            if (q4)
                CausalAttention.Attend<ContiguousKvRows<KvQ4, KvQ4>, KvQ4>(block, new ContiguousKvRows<KvQ4, KvQ4>(rows[k], rows[v], scales[k], scales[v], headDim), 0.125f, scratch);
            else if (q8)
                CausalAttention.Attend<ContiguousKvRows<KvQ8, KvQ8>, KvQ8>(block, new ContiguousKvRows<KvQ8, KvQ8>(rows[k], rows[v], scales[k], scales[v], headDim), 0.125f, scratch);
            else if (half)
                CausalAttention.Attend<ContiguousKvRows<KvF16, KvF16>, KvF16>(block, new ContiguousKvRows<KvF16, KvF16>(rows[k], rows[v], headDim), 0.125f, scratch);
            else
                CausalAttention.Attend<ContiguousKvRows<KvF32, KvF32>, KvF32>(block, new ContiguousKvRows<KvF32, KvF32>(rows[k], rows[v], headDim), 0.125f, scratch);
        }

        void Pass(string variant)
        {
            if (variant == "stream")
            {
                // Summed as integers: the bytes of Q8_0 rows are no floats (a float sum of them could be NaN).
                var acc = Vector256<int>.Zero;
                foreach (var r in rows)
                    foreach (var x in MemoryMarshal.Cast<byte, Vector256<int>>(r.AsSpan(0, (int)(depth * headDim * elementBytes)))) acc += x;
                checksum += acc[0] & 1;
                return;
            }
            for (int l = 0; l < Layers; l++)
            {
                int layer = l;
                if (threads == 1)
                    for (int h = 0; h < Heads; h++) Head(layer, h);
                else
                    Parallel.For(0, Heads, new ParallelOptions { MaxDegreeOfParallelism = threads }, h => Head(layer, h));
            }
        }

        // Two seconds of passes first: tiered compilation must reach Tier1 in every variant before timing.
        for (long warm = Stopwatch.GetTimestamp(); Stopwatch.GetElapsedTime(warm).TotalSeconds < 2;)
            foreach (string v in variants) Pass(v);
        var ms = variants.Select(_ => new double[rounds]).ToArray();
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < variants.Length; j++)
            {
                int v = (j + r) % variants.Length;
                long start = Stopwatch.GetTimestamp();
                Pass(variants[v]);
                ms[v][r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        double mb = 2.0 * Layers * Heads * depth * headDim * elementBytes / 1e6;
        Console.WriteLine($"{args[4]} decode attention, depth {depth}, head_dim {headDim}, group {group}, {threads} thread(s), {mb:F0} MB of rows, {rounds} rounds (checksum {checksum + output[0]}); base {variants[0]}: median {Median(ms[0]):F2} ms");
        for (int v = 1; v < variants.Length; v++)
            Console.WriteLine($"  {variants[v],-10} {Median([.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[v][r])]):F3}x  (median {Median(ms[v]):F2} ms)");
    }

    /// <summary>An array of <paramref name="length"/> elements, the first <paramref name="used"/> random in [-1, 1).</summary>
    private static byte[] Rows(Random rng, int length, int used, bool half)
    {
        var bytes = new byte[length * (half ? 2 : 4)];
        if (half)
            foreach (ref Half x in MemoryMarshal.Cast<byte, Half>(bytes.AsSpan())[..used]) x = (Half)(rng.NextDouble() * 2 - 1);
        else
            foreach (ref float x in MemoryMarshal.Cast<byte, float>(bytes.AsSpan())[..used]) x = (float)(rng.NextDouble() * 2 - 1);
        return bytes;
    }

    private static double Median(double[] x)
    {
        var s = x.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
