using System.Diagnostics;
using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Benchmarks;

/// <summary>
/// Long-context decode with the contiguous KV cache on huge pages against the same cache on managed arrays, alternated in
/// one process: each round rewinds both caches to CONTEXT tokens and decodes TOKENS more on each, in an order that
/// rotates per round; the report is the median over rounds of (managed time / huge-page time), above 1 is faster.
/// <code>
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- alternate-kv 40 2 1000 8
/// dotnet run -c Release --project bench/KvSharp.Benchmarks -- alternate-kv 100 1 1000 4 Q8_0 attend
/// </code>
/// (rounds, threads, cached positions, tokens or attention passes per round, the model's weight type, and "attend" to
/// time the attention over the cache alone.)
/// </summary>
internal static class KvPageAlternation
{
    public static void Run(string[] args)
    {
        int rounds = int.Parse(args[1]), threads = int.Parse(args[2]), context = int.Parse(args[3]), tokens = int.Parse(args[4]);
        var type = args.Length > 5 ? Enum.Parse<GgmlType>(args[5]) : GgmlType.Q8_0;
        using var model = LlmModel.Load(SyntheticModelBuilder.GetOrCreate(SyntheticShape.Small, type), new ModelLoadOptions { Threads = threads });
        var forward = model.CreateForwardPass();
        var config = model.Config;
        int max = context + tokens;
        using var huge = new KvCache(config, KvCacheMode.Contiguous, max, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Full, model.Rope, hugePages: true);
        using var managed = new KvCache(config, KvCacheMode.Contiguous, max, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Full, model.Rope, hugePages: false);
        var prompt = Enumerable.Range(0, context).Select(i => 1 + i * 7919 % (config.VocabSize - 1)).ToArray();
        var logits = new float[config.VocabSize];
        var other = new float[config.VocabSize];
        forward.Forward(prompt, huge, logits, allLogits: false);
        forward.Forward(prompt, managed, other, allLogits: false);
        if (!huge.OnHugePages || managed.OnHugePages) throw new InvalidOperationException("the caches are not where they should be");
        Decode(forward, huge, context, tokens, logits);
        Decode(forward, managed, context, tokens, other);
        if (!logits.AsSpan().SequenceEqual(other)) throw new InvalidOperationException("the two caches gave different logits");
        // What the process holds on huge pages: the weights and, on the huge-page side, the KV rows (Linux only).
        if (File.Exists("/proc/self/smaps_rollup")) Console.WriteLine(string.Join(" ", File.ReadAllLines("/proc/self/smaps_rollup").Where(l => l.StartsWith("AnonHugePages") || l.StartsWith("Rss"))));
        // "attend" as a sixth argument times only the attention over the cache: one query per head, every layer, on this thread.
        bool attendOnly = args.Length > 6 && args[6] == "attend";
        var ms = new[] { new double[rounds], new double[rounds] };
        var caches = new[] { managed, huge };
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < 2; j++)
            {
                int i = (j + r) % 2;
                long start = Stopwatch.GetTimestamp();
                if (attendOnly) Attend(caches[i], tokens);
                else Decode(forward, caches[i], context, tokens, logits);
                ms[i][r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        Console.WriteLine($"small {type}, F32 KV, context {context} + {tokens} {(attendOnly ? "attention passes" : "decoded")}, {threads} thread(s), {rounds} rounds, " +
            $"{huge.AllocatedBytes / 1e6:F1} MB of KV: managed median {Median(ms[0]):F1} ms; huge pages " +
            $"{Median([.. Enumerable.Range(0, rounds).Select(r => ms[0][r] / ms[1][r])]):F3}x (median {Median(ms[1]):F1} ms)");
    }

    private static void Attend(KvCache cache, int passes)
    {
        var store = (Models.IKvStore)cache;
        int hd = cache.HeadDim;
        var query = new float[hd];
        var output = new float[hd];
        var scratch = new float[Attention.CausalAttention.ScratchLength(1)];
        for (int i = 0; i < hd; i++) query[i] = MathF.Sin(i);
        for (int pass = 0; pass < passes; pass++)
            for (int l = 0; l < cache.LayerCount; l++)
                for (int h = 0; h < cache.KvHeadCount; h++)
                    store.Attend(l, h, Attention.QueryBlock.Single(query, output, 1, hd, cache.Length), 1f / MathF.Sqrt(hd), scratch);
    }

    private static void Decode(Models.ForwardPass forward, KvCache cache, int context, int tokens, float[] logits)
    {
        cache.Truncate(context);
        for (int t = 0; t < tokens; t++) forward.Forward([1 + t * 31], cache, logits, allLogits: false);
    }

    private static double Median(double[] x)
    {
        var sorted = x.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
