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
        using var cached = model.CreateSession(new SessionOptions { CacheMode = s.CacheMode, ContextLength = maxContext, KeyElementType = s.KeyElementType, ValueElementType = s.ValueElementType });
        using var none = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.None, ContextLength = maxContext, KeyElementType = s.KeyElementType, ValueElementType = s.ValueElementType });
        string cacheName = s.CacheMode.ToString().ToLowerInvariant();

        var c = model.Config;
        var plan = new[] { (p, n) }.Concat(sweep).SelectMany(r => Plan(c, r.Item1, r.Item2, reps)).ToList();
        var eta = new ScenarioEta(plan);
        log.Progress("warm-up");
        // Short runs of both modes so the JIT has optimized the forward pass before anything is timed; their times
        // also give the first estimate of how long the scenario takes.
        SpeedScenario.WarmUp(s.WarmUpSeconds, () =>
        {
            Generate(cached, model.Config, BenchRunner.Prompt(model, Math.Min(p, 64)), Math.Min(n, 16), null, "", null);
            Generate(none, model.Config, BenchRunner.Prompt(model, Math.Min(p, 64)), Math.Min(n, 4), null, "", null);
        });
        WarmUpRates(eta, c, cached, none, model, Math.Min(p, 64), Math.Min(n, 16), Math.Min(n, 4));
        log.EndProgress();
        log.Line($"estimated duration: {ScenarioEta.Format(eta.SecondsPlanned)} (the none baseline recomputes {plan.Where(r => !r.Cached).Sum(r => r.Flops) / 1e12:F2} TFLOP; " +
                 "the progress line updates the estimate)");

        var result = info.Describe("cache");
        result["cache_mode"] = cacheName;
        result["repetitions"] = reps;
        var main = Measure(info, log, eta, cached, none, p, n, reps, cacheName);
        foreach (var (key, value) in main) result[key] = value?.DeepClone();

        var t = new BenchTable("P + N", "cache", "prefill s", "decode s", "total s", "TTFT ms", "decode tok/s", "speedup vs none", "FLOPs ratio", "KV bytes");
        AddRows(t, main, cacheName);
        var runs = new JsonArray { main };
        foreach (var (sp, sn) in sweep)
        {
            var r = Measure(info, log, eta, cached, none, sp, sn, reps, cacheName);
            runs.Add(r);
            AddRows(t, r, cacheName);
        }
        result["runs"] = runs;

        table.WriteLine();
        t.Write(table);
        table.WriteLine($"speedup vs none = total time with none / total time with the {cacheName} cache (FLOPs ratio: the speedup the arithmetic predicts). FLOPs per decode step at position {p + n / 2}: " +
                        $"{(double)main["flops_per_step_with_cache"]! / 1e6:F1} MFLOP with the cache, {(double)main["flops_per_step_without_cache"]! / 1e9:F2} GFLOP without " +
                        $"(2 x {LayerMatmulParams(c) * c.LayerCount / 1e6:F2}M layer weights x tokens + 2 x {(double)c.EmbeddingDim * c.VocabSize / 1e6:F2}M output weights + attention 4 x T x {c.QueryDim} x {c.LayerCount} per token)");
        if (sweep.Count == 0 && !single && s.Sweep)
            table.WriteLine($"sweep skipped: the context {info.ContextLength} is shorter than {SweepPrompt} + {SweepGen[0]}");
        return result;
    }

    /// <summary>The runs one measurement makes, in order: <paramref name="reps"/> with the cache, then as many without.</summary>
    private static IEnumerable<(bool Cached, double Flops)> Plan(ModelConfig c, int p, int n, int reps)
    {
        var (flopsCached, flopsNone) = GenerationFlops(c, p, n);
        return Enumerable.Repeat((true, flopsCached), reps).Concat(Enumerable.Repeat((false, flopsNone), reps));
    }

    /// <summary>One timed run of each mode at the warm-up's lengths: the first seconds-per-FLOP of each.</summary>
    private static void WarmUpRates(ScenarioEta eta, ModelConfig c, InferenceSession cached, InferenceSession none, LlmModel model, int p, int nCached, int nNone)
    {
        var prompt = BenchRunner.Prompt(model, p);
        var withCache = Generate(cached, c, prompt, nCached, null, "", null);
        eta.ObserveWarmUp(true, GenerationFlops(c, p, nCached).Cached, withCache.TotalS);
        var without = Generate(none, c, prompt, nNone, null, "", null);
        eta.ObserveWarmUp(false, GenerationFlops(c, p, nNone).None, without.TotalS);
    }

    private static JsonObject Measure(BenchModelInfo info, BenchLog log, ScenarioEta eta, InferenceSession cached, InferenceSession none,
        int p, int n, int reps, string cacheName)
    {
        var model = info.Model;
        var prompt = BenchRunner.Prompt(model, p);
        var withCache = Repeat(cached, model.Config, prompt, n, reps, log, eta, $"P={p} N={n} {cacheName}");
        var without = Repeat(none, model.Config, prompt, n, reps, log, eta, $"P={p} N={n} none");
        log.EndProgress();
        var (flopsCached, flopsNone) = GenerationFlops(model.Config, p, n);
        int mid = p + n / 2;
        var r = new JsonObject
        {
            ["prompt_tokens"] = p,
            ["gen_tokens"] = n,
            ["prefill_tokens_per_s"] = new Ratio(p, withCache.PrefillS).Json,
            ["decode_tokens_per_s"] = DecodeRate(withCache),
            ["ttft_ms"] = withCache.PrefillS * 1e3,
            ["total_s"] = withCache.TotalS,
            ["speedup"] = new Ratio(without.TotalS, withCache.TotalS).Json,
            ["decode_speedup"] = new Ratio(without.DecodeS, withCache.DecodeS).Json, // null with one generated token: no decode step
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

    /// <summary>The speedup and the FLOPs ratio go on the cached row (what the cache buys); the none row is the baseline they divide.</summary>
    private static void AddRows(BenchTable t, JsonObject r, string cacheName)
    {
        string lengths = $"{r["prompt_tokens"]} + {r["gen_tokens"]}";
        foreach (string mode in new[] { cacheName, "none" })
        {
            var m = (JsonObject)r[mode]!;
            bool isCache = mode == cacheName;
            t.Add(lengths, mode, $"{(double)m["prefill_s"]!:F3}", $"{(double)m["decode_s"]!:F3}", $"{(double)m["total_s"]!:F3}",
                $"{(double)m["ttft_ms"]!:F1}", $"{(double)m["decode_tokens_per_s"]!:F1}",
                isCache ? Times(r["speedup"]) : "baseline",
                isCache ? Times(r["predicted_flops_speedup"]) : "",
                isCache ? $"{(long)r["kv_bytes_per_session"]!:N0}" : "0");
        }
    }

    private static string Times(JsonNode? ratio) => ratio is null ? "n/a" : $"{(double)ratio:F1}x";

    private static JsonObject ModeJson(ModeResult m, int p) => new()
    {
        ["prefill_s"] = m.PrefillS,
        ["decode_s"] = m.DecodeS,
        ["total_s"] = m.TotalS,
        ["ttft_ms"] = m.PrefillS * 1e3,
        ["prefill_tokens_per_s"] = new Ratio(p, m.PrefillS).Json,
        ["decode_tokens_per_s"] = DecodeRate(m),
        ["tokens_computed"] = m.Prefilled,
    };

    private static double DecodeRate(ModeResult m) => new Ratio(Math.Max(0, m.Generated - 1), m.DecodeS).Value ?? 0;

    /// <summary>Median (by total time) of <paramref name="reps"/> generations.</summary>
    private static ModeResult Repeat(InferenceSession session, ModelConfig config, int[] prompt, int n, int reps, BenchLog log, ScenarioEta eta, string label)
    {
        var results = new List<ModeResult>();
        for (int i = 0; i < reps; i++)
            results.Add(Generate(session, config, prompt, n, log, reps > 1 ? $"{label} (run {i + 1}/{reps})" : label, eta));
        return results.OrderBy(r => r.TotalS).ElementAt(results.Count / 2);
    }

    private static ModeResult Generate(InferenceSession session, ModelConfig config, int[] prompt, int n, BenchLog? log, string label, ScenarioEta? eta)
    {
        session.Reset();
        bool isCached = session.CacheMode != KvCacheMode.None;
        double runFlops = eta == null ? 0 : Flops(config, isCached, prompt.Length, n);
        eta?.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        log?.Progress($"{label}: prefill...");
        foreach (var _ in session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = n, StopAtEndOfGeneration = false }))
            if (log is { ProgressDue: true })
            {
                int generated = session.Tokens.Count - prompt.Length;
                string left = eta == null ? "" : $", about {ScenarioEta.Format(eta.SecondsLeft(isCached, runFlops, Flops(config, isCached, prompt.Length, generated), clock.Elapsed.TotalSeconds))} left in the scenario";
                log.Progress($"{label}: {generated}/{n} tokens, {clock.Elapsed.TotalSeconds:F0} s{left}", force: false);
            }
        var st = session.LastStats!;
        if (st.GeneratedTokens != n) throw new InvalidOperationException($"expected {n} generated tokens, got {st.GeneratedTokens}");
        eta?.Observe(isCached, runFlops, clock.Elapsed.TotalSeconds);
        // Tokens the forward pass computed: with the cache P + (N-1); without, the prefill plus the whole sequence every step.
        int computed = !isCached
            ? (int)Math.Min(int.MaxValue, (long)prompt.Length + Enumerable.Range(1, n - 1).Sum(i => (long)prompt.Length + i))
            : prompt.Length + n - 1;
        return new ModeResult(st.PrefillTime.TotalSeconds, st.DecodeTime.TotalSeconds, st.GeneratedTokens, computed);
    }

    /// <summary>FLOPs of a run that has generated <paramref name="generated"/> tokens so far (0: before the prefill).</summary>
    private static double Flops(ModelConfig c, bool cached, int p, int generated)
    {
        if (generated == 0) return 0;
        var (withCache, without) = GenerationFlops(c, p, generated);
        return cached ? withCache : without;
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
