using System.Text.Json.Nodes;
using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Models;

namespace KvSharp.Cli.Bench;

/// <summary>
/// The seeds' comparison: prompt P, generate N, once with the KV cache and once with <see cref="KvCacheMode.None"/>
/// (every step recomputes the whole sequence). Reports prefill, decode and total time, time to first token, the
/// speedup (time without / time with the cache), the KV bytes the cache holds, and the FLOPs arithmetic that
/// predicts the speedup. Then sweeps N to show the speedup growing with length.
/// </summary>
public static class CacheScenario
{
    public const int DefaultPrompt = 2000, DefaultGen = 500;
    public static readonly int[] SweepGen = [64, 256, 1024];
    /// <summary>The sweep's prompt length: short, so the O(N²) recomputation of the longest run stays minutes, not hours.</summary>
    public const int SweepPrompt = 128;

    private sealed record ModeResult(double PrefillS, double DecodeS, int Generated, int Prefilled)
    {
        public double TotalS => PrefillS + DecodeS;
    }

    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        bool single = s.PromptTokens != null || s.GenTokens != null;
        int p = s.PromptTokens ?? DefaultPrompt, n = s.GenTokens ?? DefaultGen;
        info.CheckFits(p + n, "--prompt-tokens + --gen-tokens");
        var sweep = single || !s.Sweep ? [] : SweepGen.Where(g => SweepPrompt + g <= info.ContextLength).Select(g => (SweepPrompt, g)).ToList();
        int reps = s.Repetitions ?? 1;
        var model = info.Model;
        int maxContext = Math.Max(p + n, sweep.Count > 0 ? sweep.Max(r => r.Item1 + r.Item2) : 0);
        using var cached = model.CreateSession(new SessionOptions { CacheMode = s.CacheMode, ContextLength = maxContext, KvElementType = s.KvType });
        using var none = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.None, ContextLength = maxContext, KvElementType = s.KvType });
        string cacheName = s.CacheMode.ToString().ToLowerInvariant();

        log.Progress("warm-up");
        // Short runs of both modes so the JIT has optimized the forward pass before anything is timed.
        SpeedScenario.WarmUp(s.WarmUpSeconds, () =>
        {
            Generate(cached, BenchRunner.Prompt(model, Math.Min(p, 64)), Math.Min(n, 16), null, "");
            Generate(none, BenchRunner.Prompt(model, Math.Min(p, 64)), Math.Min(n, 4), null, "");
        });
        log.EndProgress();

        var result = info.Describe("cache");
        result["cache_mode"] = cacheName;
        result["repetitions"] = reps;
        var main = Measure(s, info, log, cached, none, p, n, reps, cacheName);
        foreach (var (key, value) in main) result[key] = value?.DeepClone();

        var t = new BenchTable("P + N", "cache", "prefill s", "decode s", "total s", "TTFT ms", "decode tok/s", "speedup", "FLOPs ratio", "KV bytes");
        AddRows(t, main, cacheName);
        var runs = new JsonArray { main };
        foreach (var (sp, sn) in sweep)
        {
            var r = Measure(s, info, log, cached, none, sp, sn, reps, cacheName);
            runs.Add(r);
            AddRows(t, r, cacheName);
        }
        result["runs"] = runs;

        table.WriteLine();
        t.Write(table);
        var c = model.Config;
        table.WriteLine($"speedup = total time with none / total time with the {cacheName} cache. FLOPs per decode step at position {p + n / 2}: " +
                        $"{(double)main["flops_per_step_with_cache"]! / 1e6:F1} MFLOP with the cache, {(double)main["flops_per_step_without_cache"]! / 1e9:F2} GFLOP without " +
                        $"(2 x {LayerMatmulParams(c) * c.LayerCount / 1e6:F2}M layer weights x tokens + 2 x {(double)c.EmbeddingDim * c.VocabSize / 1e6:F2}M output weights + attention 4 x T x {c.QueryDim} x {c.LayerCount} per token)");
        if (sweep.Count == 0 && !single && s.Sweep)
            table.WriteLine($"sweep skipped: the context {info.ContextLength} is shorter than {SweepPrompt} + {SweepGen[0]}");
        return result;
    }

    private static JsonObject Measure(BenchSettings s, BenchModelInfo info, BenchLog log, InferenceSession cached, InferenceSession none,
        int p, int n, int reps, string cacheName)
    {
        var model = info.Model;
        var prompt = BenchRunner.Prompt(model, p);
        var withCache = Repeat(cached, prompt, n, reps, log, $"P={p} N={n} {cacheName}");
        var without = Repeat(none, prompt, n, reps, log, $"P={p} N={n} none");
        log.EndProgress();
        var (flopsCached, flopsNone) = GenerationFlops(model.Config, p, n);
        int mid = p + n / 2;
        var r = new JsonObject
        {
            ["prompt_tokens"] = p,
            ["gen_tokens"] = n,
            ["prefill_tokens_per_s"] = p / withCache.PrefillS,
            ["decode_tokens_per_s"] = DecodeRate(withCache),
            ["ttft_ms"] = withCache.PrefillS * 1e3,
            ["total_s"] = withCache.TotalS,
            ["speedup"] = without.TotalS / withCache.TotalS,
            ["decode_speedup"] = without.DecodeS / withCache.DecodeS,
            ["kv_bytes_per_token"] = info.KvBytesPerToken,
            ["kv_bytes_per_session"] = info.KvBytesPerToken * (p + n),
            [cacheName] = ModeJson(withCache, p),
            ["none"] = ModeJson(without, p),
            ["predicted_flops_speedup"] = flopsNone / flopsCached,
            ["flops_with_cache"] = flopsCached,
            ["flops_without_cache"] = flopsNone,
            ["flops_per_step_with_cache"] = StepFlops(model.Config, 1, mid - 1),
            ["flops_per_step_without_cache"] = StepFlops(model.Config, mid, 0),
        };
        return r;
    }

    private static void AddRows(BenchTable t, JsonObject r, string cacheName)
    {
        string lengths = $"{r["prompt_tokens"]} + {r["gen_tokens"]}";
        foreach (string mode in new[] { cacheName, "none" })
        {
            var m = (JsonObject)r[mode]!;
            bool isCache = mode == cacheName;
            t.Add(lengths, mode, $"{(double)m["prefill_s"]!:F3}", $"{(double)m["decode_s"]!:F3}", $"{(double)m["total_s"]!:F3}",
                $"{(double)m["ttft_ms"]!:F1}", $"{(double)m["decode_tokens_per_s"]!:F1}",
                isCache ? "1.0x" : $"{(double)r["speedup"]!:F1}x",
                isCache ? "" : $"{(double)r["predicted_flops_speedup"]!:F1}x",
                isCache ? $"{(long)r["kv_bytes_per_session"]!:N0}" : "0");
        }
    }

    private static JsonObject ModeJson(ModeResult m, int p) => new()
    {
        ["prefill_s"] = m.PrefillS,
        ["decode_s"] = m.DecodeS,
        ["total_s"] = m.TotalS,
        ["ttft_ms"] = m.PrefillS * 1e3,
        ["prefill_tokens_per_s"] = p / m.PrefillS,
        ["decode_tokens_per_s"] = DecodeRate(m),
        ["tokens_computed"] = m.Prefilled,
    };

    private static double DecodeRate(ModeResult m) => m.DecodeS > 0 ? Math.Max(0, m.Generated - 1) / m.DecodeS : 0;

    /// <summary>Median (by total time) of <paramref name="reps"/> generations.</summary>
    private static ModeResult Repeat(InferenceSession session, int[] prompt, int n, int reps, BenchLog log, string label)
    {
        var results = new List<ModeResult>();
        for (int i = 0; i < reps; i++)
            results.Add(Generate(session, prompt, n, log, reps > 1 ? $"{label} (run {i + 1}/{reps})" : label));
        return results.OrderBy(r => r.TotalS).ElementAt(results.Count / 2);
    }

    private static ModeResult Generate(InferenceSession session, int[] prompt, int n, BenchLog? log, string label)
    {
        session.Reset();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        log?.Progress($"{label}: prefill...");
        foreach (var _ in session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = n, StopAtEndOfGeneration = false }))
            if (log is { ProgressDue: true })
                log.Progress($"{label}: {session.Tokens.Count - prompt.Length}/{n} tokens, {clock.Elapsed.TotalSeconds:F0} s", force: false);
        var st = session.LastStats!;
        if (st.GeneratedTokens != n) throw new InvalidOperationException($"expected {n} generated tokens, got {st.GeneratedTokens}");
        // Tokens the forward pass computed: with the cache P + (N-1); without, the prefill plus the whole sequence every step.
        int computed = session.CacheMode == KvCacheMode.None
            ? (int)Math.Min(int.MaxValue, (long)prompt.Length + Enumerable.Range(1, n - 1).Sum(i => (long)prompt.Length + i))
            : prompt.Length + n - 1;
        return new ModeResult(st.PrefillTime.TotalSeconds, st.DecodeTime.TotalSeconds, st.GeneratedTokens, computed);
    }

    /// <summary>Weights of one layer's matrices (each multiplied once per token).</summary>
    public static double LayerMatmulParams(ModelConfig c) =>
        (double)c.EmbeddingDim * c.QueryDim + 2.0 * c.EmbeddingDim * c.KvDim + (double)c.QueryDim * c.EmbeddingDim + 3.0 * c.EmbeddingDim * c.FeedForwardDim;

    /// <summary>
    /// FLOPs of one forward call over <paramref name="tokens"/> new tokens after <paramref name="past"/> cached ones,
    /// logits for the last token only: 2 per weight per token, plus attention (QKᵀ and AV: 4 x positions x query dim
    /// per layer per token). Norms, RoPE and softmax are left out (a few percent at most).
    /// </summary>
    public static double StepFlops(ModelConfig c, int tokens, int past)
    {
        double matmul = 2.0 * tokens * c.LayerCount * LayerMatmulParams(c) + 2.0 * c.EmbeddingDim * c.VocabSize;
        double positions = (double)tokens * past + tokens * (tokens + 1.0) / 2; // Σ over new tokens of the positions each attends to
        return matmul + 4.0 * positions * c.QueryDim * c.LayerCount;
    }

    /// <summary>FLOPs of prompt P + N generated tokens with the cache and without it (every step recomputes the sequence).</summary>
    public static (double Cached, double None) GenerationFlops(ModelConfig c, int p, int n)
    {
        double prefill = StepFlops(c, p, 0);
        double cached = prefill, none = prefill;
        for (int i = 1; i < n; i++)
        {
            cached += StepFlops(c, 1, p + i - 1);
            none += StepFlops(c, p + i, 0);
        }
        return (cached, none);
    }
}
