using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Cache;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Resolves the model (a file, or a cached synthetic one), runs a scenario, and reports: progress and the table go to
/// <c>stderr</c>/<c>stdout</c>; with --json the table moves to stderr and stdout gets exactly one JSON object.
/// </summary>
public static class BenchRunner
{
    public static int Run(BenchSettings s, TextWriter stdout, TextWriter stderr)
    {
        Validate(s);
        var log = new BenchLog(stderr);
        if (s.WritePath != null) return WriteSynthetic(s, log);
        if (s.Url != null)
        {
            WriteJson(s, ServeScenario.RunExternal(s, log, s.Json ? stderr : stdout), stdout);
            return 0;
        }

        var (path, description, synthetic) = ResolveModel(s, log);
        bool peakReset = PeakMemory.Reset();
        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = s.Threads, TokenizerPath = s.TokenizerPath });
        int context = s.ContextLength ?? model.Config.TrainedContextLength;
        var info = new BenchModelInfo(model, path, description, synthetic, context, s.Threads, KvElementFormat.Of(s.KeyElementType, s.ValueElementType));
        log.Line($"model: {description}");
        log.Line($"       {info.ShapeText}; {info.WeightBytesPerToken / 1e6:F1} MB of weights read per token; context {context}; {s.Threads} threads");

        var table = s.Json ? stderr : stdout;
        var kernelPaths = KernelReport.Paths(model); // before any timing: a bad KVSHARP_ISA fails here
        JsonObject result = s.Scenario switch
        {
            BenchScenario.Speed => SpeedScenario.Run(s, info, log, table),
            BenchScenario.Cache => CacheScenario.Run(s, info, log, table),
            BenchScenario.Capacity => CapacityScenario.Run(s, info, log, table),
            BenchScenario.Concurrency => ConcurrencyScenario.Run(s, info, log, table),
            BenchScenario.Multiturn => MultiturnScenario.Run(s, info, log, table),
            BenchScenario.Serve => ServeScenario.Run(s, info, log, table),
            BenchScenario.Tiers => TiersScenario.Run(s, info, log, table),
            BenchScenario.Router => RouterScenario.Run(s, info, log, table),
            BenchScenario.Inspector => InspectorScenario.Run(s, info, log, table),
            _ => throw new ArgumentException($"unknown scenario {s.Scenario}"),
        };
        // Every record says what hardware and which kernels made it (the router's replicas load the same file on the
        // same CPU).
        KernelReport.Write(table, model);
        result["kernel_paths"] = kernelPaths;
        result["cpu"] = KernelReport.Cpu();
        long peak = PeakMemory.Peak();
        result["peak_working_set_bytes"] = peak;
        result["peak_working_set_counts_from"] = peakReset ? "model load (peak reset after any synthetic model generation)" : "process start";
        table.WriteLine($"peak working set: {peak / 1048576.0:F1} MiB ({(peakReset ? "since the model was loaded" : "whole process")})");
        WriteJson(s, result, stdout);
        return 0;
    }

    private static void WriteJson(BenchSettings s, JsonObject result, TextWriter stdout)
    {
        if (!s.Json) return;
        // Relaxed escaping: the JSON goes to a terminal or a file, never into HTML, so "P + N" stays readable
        // instead of "P \u002B N".
        stdout.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        stdout.Flush();
    }

    private static void Validate(BenchSettings s)
    {
        if (s.Threads <= 0) throw new ArgumentException($"--threads must be positive, got {s.Threads}");
        if (s.PromptTokens is <= 0) throw new ArgumentException($"--prompt-tokens must be positive, got {s.PromptTokens}");
        if (s.GenTokens is <= 0) throw new ArgumentException($"--gen-tokens must be positive, got {s.GenTokens}");
        if (s.Depth is < 0) throw new ArgumentException($"--depth must be >= 0, got {s.Depth}");
        if (s.Depth != null) RequireScenario(s, BenchScenario.Speed, "--depth sets where the speed scenario's decode starts");
        if (s.ContextLength is <= 0) throw new ArgumentException($"--context must be positive, got {s.ContextLength}");
        if (!(s.WarmUpSeconds >= 0)) throw new ArgumentException($"--warmup must be >= 0 seconds, got {s.WarmUpSeconds}");
        if (s.Repetitions is <= 0) throw new ArgumentException($"--repetitions must be positive, got {s.Repetitions}");
        if (s.KvBudgetMiB is <= 0) throw new ArgumentException($"--kv-budget-mib must be positive, got {s.KvBudgetMiB}");
        if (s.BlockSize <= 0) throw new ArgumentException($"--block-size must be positive, got {s.BlockSize}");
        if (s.Turns <= 0) throw new ArgumentException($"--turns must be positive, got {s.Turns}");
        if (s.Scenario is BenchScenario.Capacity or BenchScenario.Concurrency or BenchScenario.Multiturn)
            KvMemory.CheckBudget(s.KvBudgetMiBOrDefault * 1048576.0, $"--kv-budget-mib {s.KvBudgetMiBOrDefault}", KvMemory.AvailableBytes());
        if (s.ModelPath != null && (s.Synthetic != null || s.WeightType != null || s.VocabPath != null))
            throw new ArgumentException("give either --model PATH or --synthetic SHAPE [--type TYPE] [--vocab FILE], not both");
        if (s.VocabPath != null && !File.Exists(s.VocabPath)) throw new FileNotFoundException($"--vocab file not found: {s.VocabPath}", s.VocabPath);
        if (s.ModelPath != null && s.WritePath != null) throw new ArgumentException("--write writes a synthetic model: use it with --synthetic, not --model");
        if (s.WritePath != null) OutputPaths.CheckFile("--write", s.WritePath);
        if (s.Url != null)
        {
            RequireScenario(s, BenchScenario.Serve, "--url drives an external server");
            if (s.ModelPath != null || s.Synthetic != null || s.VocabPath != null) throw new ArgumentException("--url drives an external server that has its own model: leave out --model and --synthetic");
            if (!Uri.TryCreate(s.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new ArgumentException($"--url must be an http:// or https:// address such as http://127.0.0.1:8080, got '{s.Url}'");
        }
        if (s.Clients != null && (s.Clients.Length == 0 || s.Clients.Any(c => c <= 0)))
            throw new ArgumentException($"--clients must be positive whole numbers, got '{string.Join(",", s.Clients)}'");
        if (s.Browser != null)
        {
            RequireScenario(s, BenchScenario.Inspector, "--browser opens the inspector page");
            if (!File.Exists(s.Browser)) throw new FileNotFoundException($"--browser {s.Browser}: no such file (give a Chromium-family executable, e.g. /usr/bin/chromium)", s.Browser);
        }
        if (s.SystemTokens is < 0) throw new ArgumentException($"--system-tokens must be >= 0, got {s.SystemTokens}");
        if (s.Scenario == BenchScenario.Cache && s.CacheMode == KvCacheMode.None)
            throw new ArgumentException("--cache must be contiguous or static: the cache scenario compares it with none");
        if (s.ModelPath != null && !File.Exists(s.ModelPath)) throw new FileNotFoundException($"model file not found: {s.ModelPath}", s.ModelPath);
        // Parse names early so a typo fails before anything is generated.
        if (s.Synthetic != null) SyntheticShape.Parse(s.Synthetic);
        if (s.WeightType != null) SyntheticModelBuilder.ParseType(s.WeightType);
    }

    /// <summary>Refuses an option that only <paramref name="scenario"/> uses (<paramref name="what"/> says what it does) in another scenario.</summary>
    private static void RequireScenario(BenchSettings s, BenchScenario scenario, string what)
    {
        if (s.Scenario != scenario)
            throw new ArgumentException($"{what}: it belongs to --scenario {scenario.ToString().ToLowerInvariant()}, not {s.Scenario.ToString().ToLowerInvariant()}");
    }

    /// <summary>The shape a scenario runs on when no model is named: small for speed, tiny for cache (its none baseline is slow).</summary>
    public static SyntheticShape DefaultShape(BenchScenario scenario) =>
        scenario is BenchScenario.Speed or BenchScenario.Concurrency or BenchScenario.Tiers ? SyntheticShape.Small : SyntheticShape.Tiny;

    private static int WriteSynthetic(BenchSettings s, BenchLog log)
    {
        var shape = SyntheticShape.Parse(s.Synthetic ?? throw new ArgumentException("--write needs --synthetic SHAPE"));
        var type = SyntheticModelBuilder.ParseType(s.WeightType ?? "q8_0");
        var vocabulary = s.VocabPath != null ? GgufVocabulary.Load(s.VocabPath) : null;
        var clock = Stopwatch.StartNew();
        SyntheticModelBuilder.Write(shape, type, s.WritePath!, s.ContextLength, s.Seed, step => log.Progress($"writing {shape.Name} {type}: {step}"), vocabulary);
        log.EndProgress();
        log.Line($"wrote {s.WritePath}: synthetic {shape.Name} ({shape.Description}), {type}, context {s.ContextLength ?? shape.ContextLength}, " +
                 $"seed {s.Seed}{VocabText(vocabulary)}, {new FileInfo(s.WritePath!).Length / 1e6:F1} MB in {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    private static (string Path, string Description, bool Synthetic) ResolveModel(BenchSettings s, BenchLog log)
    {
        if (s.ModelPath != null) return (s.ModelPath, s.ModelPath, false);
        var shape = s.Synthetic != null ? SyntheticShape.Parse(s.Synthetic) : DefaultShape(s.Scenario);
        var type = SyntheticModelBuilder.ParseType(s.WeightType ?? "q8_0");
        // The tiers scenario's prefix (2,000 tokens by default) needs more than a shape's own context.
        int ctx = s.ContextLength ?? (s.Scenario == BenchScenario.Tiers ? Math.Max(shape.ContextLength, 2 * (s.PromptTokens ?? 2000) + 4 * s.BlockSize) : shape.ContextLength);
        var vocabulary = s.VocabPath != null ? GgufVocabulary.Load(s.VocabPath) : null;
        string dir = s.CacheDirectory ?? SyntheticModelBuilder.DefaultCacheDirectory();
        string path = Path.Combine(dir, SyntheticModelBuilder.FileName(shape, type, ctx, s.Seed, vocabulary));
        if (!File.Exists(path))
        {
            var clock = Stopwatch.StartNew();
            SyntheticModelBuilder.GetOrCreate(shape, type, ctx, s.Seed, dir, step => log.Progress($"generating synthetic {shape.Name} {type}: {step}"), vocabulary);
            log.EndProgress();
            log.Line($"generated {path} in {clock.Elapsed.TotalSeconds:F1} s");
        }
        string why = s.Synthetic == null ? $" (default shape for the {s.Scenario.ToString().ToLowerInvariant()} scenario)" : "";
        return (path, $"synthetic {shape.Name}{why}: {shape.Description}, random weights {type}, seed {s.Seed}{VocabText(vocabulary)} [{path}]", true);
    }

    private static string VocabText(GgufVocabulary? vocabulary) =>
        vocabulary == null ? "" : $", vocabulary of {Path.GetFileName(vocabulary.Path)} ({vocabulary.Size} tokens)";

    /// <summary>Deterministic random prompt: BOS (if any) then ids drawn from the vocabulary past the first 3.</summary>
    public static int[] Prompt(LlmModel model, int length, ulong seed = 7)
    {
        var ids = new int[length];
        var rng = new Random((int)seed);
        int bos = model.Tokenizer.BosId;
        int vocab = model.Config.VocabSize;
        int lo = Math.Min(3, vocab - 1);
        for (int i = 0; i < length; i++) ids[i] = rng.Next(lo, vocab);
        if (bos >= 0) ids[0] = bos;
        return ids;
    }

    internal static double Median(IReadOnlyList<double> xs)
    {
        var sorted = xs.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}

/// <summary>What the scenarios need to know about the model under test.</summary>
public sealed class BenchModelInfo(LlmModel model, string path, string description, bool synthetic, int context, int threads,
    KvElementFormat? kvFormat = null)
{
    public LlmModel Model { get; } = model;
    public string Path { get; } = path;
    public string Description { get; } = description;
    public bool Synthetic { get; } = synthetic;
    public int ContextLength { get; } = context;
    public int Threads { get; } = threads;
    public long WeightBytesPerToken { get; } = model.Weights.ActiveMatrixBytes(model.Config.ExpertsUsed);
    /// <summary>How the scenario's caches store keys and values.</summary>
    public KvElementFormat KvFormat { get; } = kvFormat ?? KvElementFormat.Of(KvElementType.F32);
    public long KvBytesPerToken => KvFormat.BytesPerToken(Model.Config);
    /// <summary>"F16 K and V", or "F16 K, Q8_0 V".</summary>
    public string KvTypesText => KvFormat.KeyName == KvFormat.ValueName ? $"{KvFormat.Name} K and V" : $"{KvFormat.KeyName} K, {KvFormat.ValueName} V";

    public string ShapeText
    {
        get
        {
            var c = Model.Config;
            return $"{c.Architecture}: dim {c.EmbeddingDim}, {c.LayerCount} layers, {c.HeadCount} heads / {c.KvHeadCount} kv heads (head dim {c.HeadDim}), " +
                   $"ffn {c.FeedForwardDim}, vocab {c.VocabSize}, weights {TypesText}";
        }
    }

    public string TypesText => string.Join("+", Model.Weights.ProductMatrices().Select(m => m.Type).Distinct());

    public JsonObject Describe(string scenario) => new()
    {
        ["scenario"] = scenario,
        ["model"] = Path,
        ["model_description"] = Description,
        ["synthetic"] = Synthetic,
        ["weight_types"] = TypesText,
        ["kv_type"] = KvFormat.Name.ToLowerInvariant(),
        ["kv_type_k"] = KvFormat.KeyName.ToLowerInvariant(),
        ["kv_type_v"] = KvFormat.ValueName.ToLowerInvariant(),
        ["threads"] = Threads,
        ["context_length"] = ContextLength,
    };

    /// <summary>Fails with a one-line error when a run does not fit the context, or its KV cache does not fit in memory.</summary>
    public void CheckFits(int tokens, string what)
    {
        if (tokens > ContextLength)
            throw new ArgumentException($"{what} = {tokens} tokens exceeds the context length {ContextLength}" +
                                        (Synthetic ? " (a synthetic model takes any --context)" : " (raise --context)"));
        // Every position of every layer: the most a paged pool holds (with --swa-full), so no ring or window is counted.
        KvMemory.CheckTokens(Model.Config, KvFormat, tokens, $"{what} = {tokens} tokens", KvMemory.AvailableBytes(), fullLocalLayers: true);
    }
}

/// <summary>Progress lines on stderr that overwrite themselves on a terminal.</summary>
public sealed class BenchLog(TextWriter err)
{
    private readonly bool _terminal = ReferenceEquals(err, Console.Error) && !Console.IsErrorRedirected;
    private bool _open;
    private long _lastProgress;

    public void Line(string text)
    {
        EndProgress();
        err.WriteLine(text);
        err.Flush();
    }

    /// <summary>
    /// A progress update: in place on a terminal, else as a line. With <paramref name="force"/> false it is dropped
    /// unless 0.5 s (terminal) or 2 s (file, pipe) passed since the last one; a dropped update costs one timestamp, so
    /// it may be called between decode steps (writing and flushing stderr there slowed a 1 ms step to tens of ms).
    /// </summary>
    public void Progress(string text, bool force = true)
    {
        long now = Stopwatch.GetTimestamp();
        if (!force && Stopwatch.GetElapsedTime(_lastProgress, now).TotalSeconds < (_terminal ? 0.5 : 2)) return;
        _lastProgress = now;
        if (_terminal)
        {
            err.Write("\r\x1b[K" + text);
            _open = true;
        }
        else
        {
            err.WriteLine(text);
        }
        err.Flush();
    }

    /// <summary>True when a non-forced <see cref="Progress"/> call would print now (to avoid building its text otherwise).</summary>
    public bool ProgressDue => Stopwatch.GetElapsedTime(_lastProgress).TotalSeconds >= (_terminal ? 0.5 : 2);

    public void EndProgress()
    {
        if (_open) err.WriteLine();
        _open = false;
    }
}
