using System.Diagnostics;
using System.Runtime.Intrinsics;
using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Decode attention alone over paged KV (`small` shape; F32 rows, or F16 or Q8_0 ones): S sequences of P positions each, one query token per
/// sequence, every layer and KV head, as a batched decode step runs it but without the products around it. "cold"
/// walks 256 MiB between passes so the rows come from memory, as they do in a step whose weights stream through the
/// caches; "hot" leaves them where the last pass put them. With T threads each takes a contiguous share of the
/// sequences. Beside it, a plain sequential read of as many bytes on one thread: the memory speed the rows could
/// arrive at.
/// <code>
/// dotnet bench/KvSharp.Benchmarks/bin/Release/net10.0/KvSharp.Benchmarks.dll paged-attention 40 16 64 cold 2 heads
/// dotnet bench/KvSharp.Benchmarks/bin/Release/net10.0/KvSharp.Benchmarks.dll paged-attention 20 16 512 cold 2 heads f16
/// </code>
/// (rounds, sequences, positions, cold|hot, threads, "heads" to attend a sequence's KV heads in one call, tile by
/// tile across them, as the forward pass does for a decode token, or "each" for one call per head, and the rows' type,
/// f32 (the default), f16 or q8_0.)
/// </summary>
internal static class PagedAttentionProbe
{
    public static void Run(string[] args)
    {
        int rounds = int.Parse(args[1]), sequences = int.Parse(args[2]), positions = int.Parse(args[3]);
        bool cold = args.Length <= 4 || args[4] != "hot";
        int threads = args.Length > 5 ? int.Parse(args[5]) : 1;
        bool together = args.Length > 6 && args[6] == "heads";
        using var model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(SyntheticShape.Small, GgmlType.Q8_0), new ModelLoadOptions { Threads = 1 });
        var c = model.Config;
        // A last argument f16 or q8_0 stores the rows as that type (default F32).
        var kvType = args.Length > 7 ? Enum.Parse<KvElementType>(args[7], ignoreCase: true) : KvElementType.F32;
        using var pool = new KvBlockPool(c, 16, sequences * (positions / 16 + 2), kvType);
        var seqs = Fill(pool, c, sequences, positions);
        long bytes = (long)sequences * positions * KvElementFormat.Of(kvType).BytesPerToken(c);
        var evict = new byte[256 << 20];

        void AttendShare(int thread)
        {
            var q = new float[c.QueryDim];
            var output = new float[c.QueryDim];
            for (int i = 0; i < q.Length; i++) q[i] = 0.01f * (i % 17);
            var scratch = new float[CausalAttention.ScratchLength(c.GroupSize) * c.KvHeadCount];
            int width = c.GroupSize * c.HeadDim;
            for (int l = 0; l < c.LayerCount; l++)
                for (int s = thread * sequences / threads; s < (thread + 1) * sequences / threads; s++)
                {
                    if (together && seqs[s].TryAttendHeads(l, 0, c.KvHeadCount, q, output, positions - 1, 0.125f, scratch, scratch.Length / c.KvHeadCount))
                        continue;
                    for (int h = 0; h < c.KvHeadCount; h++)
                    {
                        var block = new QueryBlock(q.AsSpan(h * width, width), output.AsSpan(h * width, width), 1, c.QueryDim, positions - 1,
                            c.GroupSize, c.HeadDim);
                        seqs[s].Attend(l, h, block, 0.125f, scratch);
                    }
                }
        }

        // Tiered compilation settles in the first seconds; only passes after that are kept.
        var times = new List<double>();
        var warm = Stopwatch.StartNew();
        while (times.Count < rounds)
        {
            if (cold) Touch(evict);
            long start = Stopwatch.GetTimestamp();
            if (threads == 1) AttendShare(0);
            else Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, AttendShare);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (warm.ElapsedMilliseconds > 3000) times.Add(ms);
        }
        double median = Median(times);
        int items = sequences * c.LayerCount * c.KvHeadCount;
        Console.WriteLine($"{sequences} sequences x {positions} positions, {(cold ? "cold" : "hot")}, {threads} thread(s), {(together ? "heads together" : "head by head")}: {median:F3} ms a pass " +
            $"(quartiles {Quantile(times, 0.25):F3}-{Quantile(times, 0.75):F3}), {median * 1000 / items * threads:F2} us per head per thread, " +
            $"{bytes / median / 1e6:F1} GB/s of {kvType} K/V rows");
        Console.WriteLine($"  one thread reading {bytes / 1e6:F0} MB in order: {SequentialRead(bytes, cold ? evict : null, 1):F1} GB/s");
        if (threads > 1)
            Console.WriteLine($"  {threads} threads reading {bytes / 1e6:F0} MB in order, a share each: {SequentialRead(bytes, cold ? evict : null, threads):F1} GB/s");
        foreach (var s in seqs) s.Release();
    }

    private static PagedKvSequence[] Fill(KvBlockPool pool, ModelConfig c, int sequences, int positions)
    {
        var rng = new Random(1);
        var k = new float[c.KvDim];
        var v = new float[c.KvDim];
        var seqs = new PagedKvSequence[sequences];
        for (int s = 0; s < sequences; s++)
        {
            seqs[s] = new PagedKvSequence(pool, positions + 16);
            seqs[s].Reserve(positions);
            for (int p = 0; p < positions; p++)
                for (int l = 0; l < c.LayerCount; l++)
                {
                    for (int i = 0; i < k.Length; i++) (k[i], v[i]) = ((float)rng.NextDouble() - 0.5f, (float)rng.NextDouble() - 0.5f);
                    seqs[s].Write(l, p, k, v);
                }
            seqs[s].Commit(positions);
        }
        return seqs;
    }

    /// <summary>GB/s of <paramref name="threads"/> threads each reading its contiguous share of as many bytes, in order.</summary>
    private static double SequentialRead(long bytes, byte[]? evict, int threads)
    {
        var data = new float[bytes / sizeof(float)];
        var times = new List<double>();
        void Share(int t)
        {
            int from = (int)((long)data.Length * t / threads) & ~31, to = (int)((long)data.Length * (t + 1) / threads) & ~31;
            var acc = Vector256<float>.Zero;
            ref float f = ref data[0];
            for (int i = from; i + 32 <= to; i += 32)
                acc += Vector256.LoadUnsafe(ref f, (nuint)i) + Vector256.LoadUnsafe(ref f, (nuint)i + 8)
                    + Vector256.LoadUnsafe(ref f, (nuint)i + 16) + Vector256.LoadUnsafe(ref f, (nuint)i + 24);
            if (acc[0] == 1) Console.Write(""); // keeps the sum alive
        }
        for (int r = 0; r < 21; r++)
        {
            if (evict != null) Touch(evict);
            long start = Stopwatch.GetTimestamp();
            if (threads == 1) Share(0);
            else Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, Share);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return bytes / Median(times) / 1e6;
    }

    private static void Touch(byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i += 64) bytes[i]++;
    }

    private static double Median(List<double> x) => Quantile(x, 0.5);

    private static double Quantile(List<double> x, double q)
    {
        var sorted = x.Order().ToArray();
        return sorted[(int)(q * (sorted.Length - 1))];
    }
}
