using System.Diagnostics;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Cli.Bench;

/// <summary>Shared pieces of the engine scenarios (capacity, concurrency, multiturn).</summary>
internal static class EngineBench
{
    /// <summary>A greedy request of exactly <paramref name="gen"/> tokens (no early stop), prompt drawn from <paramref name="seed"/>.</summary>
    public static EngineRequest Request(LlmModel model, int prompt, int gen, ulong seed) => new()
    {
        PromptTokens = BenchRunner.Prompt(model, prompt, seed),
        Options = new GenerationOptions { MaxTokens = gen, StopAtEndOfGeneration = false },
    };

    /// <summary>
    /// Warm-up (--warmup seconds, at least two runs) of the engine's whole path, prefill and batched decode, with
    /// and without prefix hits: .NET optimizes hot methods fully only after they ran a while, and a cold first
    /// measurement would be several times too slow.
    /// </summary>
    public static void WarmUp(BenchSettings s, LlmModel model, BenchLog log, int context)
    {
        int prompt = Math.Max(1, Math.Min(64, context / 2)), gen = Math.Max(1, Math.Min(16, context - prompt));
        var clock = Stopwatch.StartNew();
        for (int run = 0; run < 2 || clock.Elapsed.TotalSeconds < s.WarmUpSeconds; run++)
        {
            using var warm = new LlmEngine(model, Options(s, model.Config, context));
            for (int i = 0; i < 4; i++) warm.Submit(Request(model, prompt, gen, (ulong)(1 + i % 2)));
            warm.RunUntilIdle();
            log.Progress("warm-up", force: false);
        }
        log.EndProgress();
    }

    /// <summary>
    /// The engine's options for a scenario. The budget is the block pool's, whatever the KV type: a KIVI type's exact
    /// rows, which the engine takes out of its budget for each sequence that can run at once, come on top of it, so
    /// the scenarios compare types at the same pool capacity and the same prompts fit.
    /// </summary>
    public static EngineOptions Options(BenchSettings s, KvSharp.Models.ModelConfig config, int context, long? budgetBytes = null, bool prefixCaching = true,
        int maxRunning = 64, int maxStep = 256)
    {
        var options = new EngineOptions
        {
            BlockSize = s.BlockSize,
            ContextLength = context,
            PrefixCaching = prefixCaching,
            KeyElementType = s.KeyElementType,
            ValueElementType = s.ValueElementType,
            MaxRunningSequences = maxRunning,
            MaxStepTokens = maxStep,
            FullLocalLayers = s.FullLocalLayers,
        };
        return options with { KvBudgetBytes = (budgetBytes ?? s.KvBudgetMiBOrDefault * (1L << 20)) + options.ExactRowsBytes(config) };
    }
}

/// <summary>
/// How many sessions of prompt P + output N run at once in a fixed KV budget: the paged pool (blocks allocated as
/// sequences grow) against each session reserving its whole context contiguously. The paged count is what the
/// block arithmetic allows (budget blocks / blocks per finished session); the engine then runs exactly that many
/// together, and the peak of sessions running at once and any preemptions are measured.
/// <para>
/// KV waste is one figure per layout with one meaning: the share of the slots a session reserves that it leaves
/// unfilled when it finishes. A finished session fills T = P + N - 1 positions (the last sampled token is never run
/// through the model); paged reserves T rounded up to whole blocks, contiguous reserves the whole context, ideal
/// exactly T. (An earlier version measured the paged figure at the step with the most filled positions, where the
/// sessions, prefilled one step apart, were at different points of their last block: a number that moved with the
/// schedule and disagreed with the block arithmetic. That occupancy is still reported, under its own name.)
/// </para>
/// </summary>
public static class CapacityScenario
{
    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int p = s.PromptTokens ?? 256, n = s.GenTokens ?? 256, context = info.ContextLength;
        info.CheckFits(p + n, "--prompt-tokens + --gen-tokens");
        long budget = s.KvBudgetMiBOrDefault * (1L << 20);
        long perToken = info.KvBytesPerToken;
        int filled = p + n - 1;
        var config = info.Model.Config;
        // What no layout beats: every filled position, but only the last window in a model's local layers. A contiguous
        // session reserves its whole context (its local layers a ring of their window).
        long least = KvSharp.Cache.KvSizing.LeastSequenceBytes(config, info.KvFormat, filled);
        long contiguousBytes = KvSharp.Cache.KvSizing.SequenceBytes(config, info.KvFormat, context, s.FullLocalLayers);
        long contiguousSessions = budget / contiguousBytes;
        long idealSessions = budget / least;
        var clock = Stopwatch.StartNew();
        var fits = RunSessions(s, info, log, budget, context, p, n);
        log.EndProgress();
        long blocksPerSession = fits.BlocksPerSession;
        double pagedWaste = 1 - (double)least / (blocksPerSession * fits.BytesPerBlock);
        double contiguousWaste = 1 - (double)least / contiguousBytes;
        var overContiguous = new Ratio(fits.PeakRunning, contiguousSessions);

        var result = info.Describe("capacity");
        result["prompt_tokens"] = p;
        result["gen_tokens"] = n;
        result["context"] = context;
        result["kv_budget_bytes"] = budget;
        result["block_size"] = s.BlockSize;
        result["kv_bytes_per_token"] = perToken;
        result["kv_bytes_per_session"] = perToken * (p + n);
        result["kv_least_bytes_per_session"] = least;
        result["kv_layer_groups"] = fits.Groups.ToString();
        result["filled_positions_per_session"] = filled;
        result["sessions_paged"] = fits.PeakRunning;
        result["sessions_contiguous"] = contiguousSessions;
        result["sessions_ideal"] = idealSessions;
        result["paged_over_contiguous"] = overContiguous.Json; // null when not one contiguous session fits
        result["kv_waste_definition"] = "share of the bytes a session reserves beyond the least it needs when it finishes (P + N - 1 filled positions; a local layer needs only its window)";
        result["kv_waste_fraction"] = pagedWaste;
        result["kv_waste_fraction_contiguous"] = contiguousWaste;
        // With local layers apart a block holds one group's layers, and a local layer's slots before the window are let
        // go: positions filled and slots allocated no longer compare.
        bool slotsCompare = !fits.Groups.SplitsLocalLayers;
        result["paged_allocated_slots_at_peak"] = slotsCompare ? fits.Allocated : null;
        result["paged_filled_slots_at_peak"] = slotsCompare ? fits.Filled : null;
        result["paged_unfilled_fraction_at_peak"] = slotsCompare ? new Ratio(fits.Allocated - fits.Filled, fits.Allocated).Json : null;
        result["preemptions"] = fits.Preemptions;
        result["seconds"] = clock.Elapsed.TotalSeconds;

        var t = new BenchTable("layout", "sessions", "KV waste", "how");
        t.Add("paged", $"{fits.PeakRunning}", Percent(pagedWaste),
            $"blocks of {s.BlockSize} allocated as sequences grow ({blocksPerSession} per session; {fits.Groups}); ran together, {fits.Preemptions} preemptions");
        t.Add("contiguous", $"{contiguousSessions}", Percent(contiguousWaste), $"each session reserves its {context}-token context");
        t.Add("ideal", $"{idealSessions}", Percent(0), least == perToken * filled ? $"budget / ({p} + {n} - 1) tokens x {perToken} B"
            : $"budget / {least:N0} B (({p} + {n} - 1) tokens in the global layers, the window in the local ones)");
        table.WriteLine();
        t.Write(table);
        table.WriteLine($"KV waste: the share of the bytes a session reserves beyond the least it needs when it finishes ({filled} positions filled).");
        if (fits.Allocated > 0 && slotsCompare)
            table.WriteLine($"measured when the most positions were filled: {fits.Filled:N0} of {fits.Allocated:N0} allocated paged slots " +
                            $"({Percent(1 - (double)fits.Filled / fits.Allocated)} unfilled: sequences part-way through their last block)");
        string ratio = contiguousSessions > 0
            ? overContiguous.Text("F2")
            : $"n/a: not one contiguous session fits (each reserves {KvMemory.Size((double)perToken * context)}, the budget is {KvMemory.Size(budget)})";
        table.WriteLine($"KV budget {budget / 1048576.0:F0} MiB; paged/contiguous = {ratio}");
        return result;
    }

    private static string Percent(double fraction) => $"{fraction * 100:F2}%";

    private readonly record struct Outcome(int Sessions, int PeakRunning, long Allocated, long Filled, long Preemptions, long BlocksPerSession,
        long BytesPerBlock, KvSharp.Cache.Paged.KvLayerGroups Groups);

    /// <summary>Runs as many sessions at once as the block arithmetic allows (none when one session needs more blocks than the budget holds).</summary>
    private static Outcome RunSessions(BenchSettings s, BenchModelInfo info, BenchLog log, long budget, int context, int p, int n)
    {
        var model = info.Model;
        var probe = EngineBench.Options(s, model.Config, context, budget, prefixCaching: false);
        int sessions;
        long blocksPerSession, bytesPerBlock;
        KvSharp.Cache.Paged.KvLayerGroups groups;
        using (var sizing = new LlmEngine(model, probe with { MaxStepTokens = 1, MaxRunningSequences = 1 }))
        {
            blocksPerSession = sizing.Pool.BlocksForSequence(p + n - 1);
            sessions = (int)(sizing.Pool.BlockCount / blocksPerSession);
            bytesPerBlock = sizing.Pool.BytesPerBlock;
            groups = sizing.Pool.LayerGroups;
        }
        if (sessions == 0) return new Outcome(0, 0, 0, 0, 0, blocksPerSession, bytesPerBlock, groups);
        // Distinct prompts: nothing is shared, every session pays for its own blocks.
        using var engine = new LlmEngine(model, probe with { MaxRunningSequences = sessions, MaxStepTokens = Math.Max(256, sessions) });
        for (int i = 0; i < sessions; i++) engine.Submit(EngineBench.Request(model, p, n, (ulong)(1000 + i)));
        int peak = 0;
        long allocated = 0, filled = 0;
        while (engine.Step())
        {
            var snap = engine.Snapshot();
            peak = Math.Max(peak, snap.Running);
            if (snap.FilledPositions > filled)
            {
                filled = snap.FilledPositions;
                allocated = (long)snap.UsedBlocks * s.BlockSize;
            }
            log.Progress($"capacity: {sessions} sessions, {engine.Metrics.GeneratedTokens} tokens generated, {snap.Running} running, {snap.UsedBlocks}/{engine.Pool.BlockCount} blocks", force: false);
        }
        return new Outcome(sessions, peak, allocated, filled, engine.Metrics.Preemptions, blocksPerSession, bytesPerBlock, groups);
    }
}

/// <summary>Aggregate decode tokens/s with 1, 4, 16 and 64 sequences decoding together (each weight read once per step).</summary>
public static class ConcurrencyScenario
{
    public static readonly int[] Levels = [1, 4, 16, 64];

    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int p = s.PromptTokens ?? 32, n = s.GenTokens ?? 64;
        info.CheckFits(p + n, "--prompt-tokens + --gen-tokens");
        var model = info.Model;
        var runs = new JsonArray();
        var t = new BenchTable("concurrency", "decode tok/s", "per sequence", "vs 1", "vs 1, paired");
        double single = 0;
        EngineBench.WarmUp(s, model, log, p + n);
        int reps = s.Repetitions ?? 3;
        // The median of several runs per level: one run at low concurrency is only a few hundred ms of steps, so one
        // scheduler hiccup on a shared machine would otherwise decide the baseline that every ratio divides by. The
        // runs go round by round (1, 4, 16, 64, then again), not level by level, so a slow spell of the host lands on
        // every level alike instead of on whichever level it happened to coincide with.
        var measured = Levels.ToDictionary(c => c, _ => new List<(double Rate, long Generated, double Seconds)>());
        for (int rep = 0; rep < reps; rep++)
            foreach (int c in Levels)
                measured[c].Add(DecodeRate(s, info, log, c, p, n));
        foreach (int c in Levels)
        {
            var rates = measured[c];
            var (rate, generated, seconds) = rates.OrderBy(r => r.Rate).ElementAt(reps / 2);
            if (c == 1) single = rate;
            // Each round's rate over the same round's single sequence, a few seconds apart: the host's drift over the
            // whole run cancels, which the ratio of the medians does not do (one sequence runs for well under a second).
            double paired = BenchRunner.Median(rates.Select((r, i) => r.Rate / measured[1][i].Rate).ToList());
            runs.Add(new JsonObject
            {
                ["concurrency"] = c,
                ["tokens_per_s"] = rate,
                ["per_sequence_tokens_per_s"] = rate / c,
                ["generated_tokens"] = generated,
                ["seconds"] = seconds,
                ["repetitions"] = reps,
                ["tokens_per_s_min"] = rates.Min(r => r.Rate),
                ["tokens_per_s_max"] = rates.Max(r => r.Rate),
                ["speedup_vs_1"] = new Ratio(rate, single).Json,
                ["speedup_vs_1_paired"] = paired,
            });
            t.Add($"{c}", $"{rate:F1}", $"{rate / c:F1}", new Ratio(rate, single).Text("F2"), $"{paired:F2}x");
        }
        log.EndProgress();
        var result = info.Describe("concurrency");
        result["prompt_tokens"] = p;
        result["gen_tokens"] = n;
        result["decode_tokens_per_s"] = single;
        result["runs"] = runs;
        table.WriteLine();
        t.Write(table);
        return result;
    }

    /// <summary>c sequences prefilled first, then decode tokens/s from the step where all of them decode.</summary>
    private static (double Rate, long Generated, double Seconds) DecodeRate(BenchSettings s, BenchModelInfo info, BenchLog log, int c, int p, int n)
    {
        var model = info.Model;
        long budget = Math.Max(s.KvBudgetMiBOrDefault * (1L << 20), info.KvBytesPerToken * (p + n + s.BlockSize) * c);
        using var engine = new LlmEngine(model, EngineBench.Options(s, model.Config, p + n, budget, prefixCaching: false, maxRunning: c, maxStep: Math.Max(256, c)));
        var handles = Enumerable.Range(0, c).Select(i => engine.Submit(EngineBench.Request(model, p, n, (ulong)(500 + i)))).ToList();
        while (handles.Any(h => h.OutputTokens[0].Count == 0)) engine.Step();
        long before = engine.Metrics.GeneratedTokens;
        var clock = Stopwatch.StartNew();
        while (engine.Step()) log.Progress($"concurrency {c}: {engine.Metrics.GeneratedTokens - before} tokens", force: false);
        double seconds = clock.Elapsed.TotalSeconds;
        long generated = engine.Metrics.GeneratedTokens - before;
        return (new Ratio(generated, seconds).Value ?? 0, generated, seconds);
    }
}

/// <summary>
/// A chat whose history grows turn by turn: time to first token per turn with prefix caching (the history's blocks
/// are reused) and without (the whole history is prefilled again each turn).
/// </summary>
public static class MultiturnScenario
{
    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int turns = s.Turns, user = s.PromptTokens ?? 64, reply = s.GenTokens ?? 128;
        int total = turns * (user + reply);
        info.CheckFits(total, "--turns x (--prompt-tokens + --gen-tokens)");
        var model = info.Model;
        EngineBench.WarmUp(s, model, log, total + 1);
        var with = RunChat(s, info, log, prefixCaching: true, turns, user, reply, total, out double hitRate);
        var without = RunChat(s, info, log, prefixCaching: false, turns, user, reply, total, out _);
        log.EndProgress();

        var runs = new JsonArray();
        var t = new BenchTable("turn", "prompt tokens", "cached", "TTFT with cache ms", "TTFT without ms", "ratio");
        for (int i = 0; i < turns; i++)
        {
            runs.Add(new JsonObject
            {
                ["turn"] = i + 1,
                ["prompt_tokens"] = with[i].Prompt,
                ["cached_prompt_tokens"] = with[i].Cached,
                ["ttft_ms_with_cache"] = with[i].TtftMs,
                ["ttft_ms_without_cache"] = without[i].TtftMs,
            });
            t.Add($"{i + 1}", $"{with[i].Prompt}", $"{with[i].Cached}", $"{with[i].TtftMs:F1}", $"{without[i].TtftMs:F1}", new Ratio(without[i].TtftMs, with[i].TtftMs).Text("F1"));
        }
        var result = info.Describe("multiturn");
        result["turns"] = turns;
        result["user_tokens"] = user;
        result["reply_tokens"] = reply;
        result["prefix_hit_rate"] = hitRate;
        result["ttft_ms"] = with[^1].TtftMs;
        result["ttft_ms_without_cache"] = without[^1].TtftMs;
        var lastRatio = new Ratio(without[^1].TtftMs, with[^1].TtftMs);
        result["last_turn_ttft_ratio"] = lastRatio.Json;
        result["runs"] = runs;
        table.WriteLine();
        t.Write(table);
        table.WriteLine($"prefix hit rate over turns 2-{turns}: {hitRate:P1}; turn {turns} time to first token {lastRatio.Text("F1")} lower with prefix caching");
        return result;
    }

    private readonly record struct Turn(int Prompt, int Cached, double TtftMs);

    private static List<Turn> RunChat(BenchSettings s, BenchModelInfo info, BenchLog log, bool prefixCaching, int turns, int user, int reply, int total, out double hitRate)
    {
        var model = info.Model;
        long budget = Math.Max(s.KvBudgetMiBOrDefault * (1L << 20), info.KvBytesPerToken * (total + 4L * s.BlockSize) * 2);
        using var engine = new LlmEngine(model, EngineBench.Options(s, model.Config, total + 1, budget, prefixCaching));
        var history = new List<int>();
        var result = new List<Turn>();
        long promptAfterFirst = 0, cachedAfterFirst = 0;
        for (int turn = 0; turn < turns; turn++)
        {
            var message = BenchRunner.Prompt(model, user, (ulong)(40 + turn));
            history.AddRange(turn == 0 ? message : message.Skip(1)); // later messages carry no BOS
            var h = engine.Submit(new EngineRequest
            {
                PromptTokens = history.ToArray(),
                Options = new GenerationOptions { MaxTokens = reply, StopAtEndOfGeneration = false },
            });
            while (!h.IsDone)
            {
                engine.Step();
                log.Progress($"multiturn ({(prefixCaching ? "with" : "without")} prefix cache): turn {turn + 1}/{turns}", force: false);
            }
            if (h.Status != RequestStatus.Finished) throw new InvalidOperationException($"turn {turn + 1} ended as {h.Status}: {h.Error}");
            result.Add(new Turn(history.Count, h.CachedPromptTokens, h.TimeToFirstToken!.Value.TotalMilliseconds));
            if (turn > 0)
            {
                promptAfterFirst += history.Count;
                cachedAfterFirst += h.CachedPromptTokens;
            }
            history.AddRange(h.OutputTokens[0]);
        }
        hitRate = promptAfterFirst > 0 ? (double)cachedAfterFirst / promptAfterFirst : 0;
        return result;
    }
}
