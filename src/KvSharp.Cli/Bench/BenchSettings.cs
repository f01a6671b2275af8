using KvSharp.Cache;

namespace KvSharp.Cli.Bench;

public enum BenchScenario
{
    /// <summary>Prefill and decode tokens/s (llama-bench's pp/tg), bandwidth ratio, peak working set.</summary>
    Speed,
    /// <summary>The same generation with and without the KV cache: time, speedup, KV bytes.</summary>
    Cache,
    /// <summary>Sessions that fit a KV budget: paged blocks against contiguous reservations.</summary>
    Capacity,
    /// <summary>Aggregate decode tokens/s at 1, 4, 16 and 64 concurrent sequences.</summary>
    Concurrency,
    /// <summary>A growing chat: time to first token per turn with and without prefix caching.</summary>
    Multiturn,
    /// <summary>Concurrent streaming chat clients over HTTP: TTFT, inter-token latency, tokens/s, prefix hit rate.</summary>
    Serve,
    /// <summary>Time to first token of a 2,000-token prefix from RAM, the disk tier, the Redis tier, and recomputed.</summary>
    Tiers,
    /// <summary>Users chatting through `kvsharp router` to 3 replicas (--replicas): prefix hit rate and tokens/s, prefix-aware against round-robin.</summary>
    Router,
    /// <summary>Decode tokens/s with and without the inspector page's event stream open, ABBA; the cost of one snapshot.</summary>
    Inspector,
}

/// <summary>Everything `kvsharp bench` was asked to do, parsed and defaulted.</summary>
public sealed record BenchSettings
{
    public BenchScenario Scenario { get; init; } = BenchScenario.Speed;
    /// <summary>A GGUF file (or llama2.c checkpoint with <see cref="TokenizerPath"/>); null = a synthetic model.</summary>
    public string? ModelPath { get; init; }
    public string? TokenizerPath { get; init; }
    /// <summary>Synthetic shape name; null with no model path = the scenario's default shape.</summary>
    public string? Synthetic { get; init; }
    public string? WeightType { get; init; }
    /// <summary>A GGUF whose tokenizer (vocabulary, merges, special ids, chat template) the synthetic model copies; null = the built-in synthetic vocabulary.</summary>
    public string? VocabPath { get; init; }
    public int? ContextLength { get; init; }
    public ulong Seed { get; init; } = KvSharp.Synthetic.SyntheticModelBuilder.DefaultSeed;
    public int? PromptTokens { get; init; }
    public int? GenTokens { get; init; }
    /// <summary>Speed scenario: positions in the cache when the timed decode starts (llama-bench's -d); null or 0: after a 1-token prompt.</summary>
    public int? Depth { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Measured runs per length after the warm-up (default: 5 for speed, 3 per level for concurrency, 1 for cache).</summary>
    public int? Repetitions { get; init; }
    /// <summary>The cache mode compared with <see cref="KvCacheMode.None"/> in the cache scenario.</summary>
    public KvCacheMode CacheMode { get; init; } = KvCacheMode.Contiguous;
    /// <summary>Cache scenario: also sweep the generated length (64, 256, 1024) after the main measurement.</summary>
    public bool Sweep { get; init; } = true;
    /// <summary>Engine scenarios: keep every position of a model's local layers (--swa-full) instead of letting go of their blocks behind the window.</summary>
    public bool FullLocalLayers { get; init; }
    public bool Json { get; init; }
    /// <summary>Write the synthetic model to this GGUF path and stop.</summary>
    public string? WritePath { get; init; }
    /// <summary>Where synthetic models are cached (default <see cref="KvSharp.Synthetic.SyntheticModelBuilder.DefaultCacheDirectory"/>).</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>Seconds of warm-up runs before each measured length (at least two runs), so the JIT has tiered up.</summary>
    public double WarmUpSeconds { get; init; } = 3;
    /// <summary>How the KV cache stores keys and values (every scenario).</summary>
    public KvElementType KvType { get; init; } = KvElementType.F32;
    /// <summary>How the KV cache stores keys, where they differ from values (--kv-type-k); default <see cref="KvType"/>.</summary>
    public KvElementType? KvKeyType { get; init; }
    /// <summary>How the KV cache stores values, where they differ from keys (--kv-type-v); default <see cref="KvType"/>.</summary>
    public KvElementType? KvValueType { get; init; }
    public KvElementType KeyElementType => KvKeyType ?? KvType;
    public KvElementType ValueElementType => KvValueType ?? KvType;
    /// <summary>Engine scenarios: the KV budget in MiB (--kv-budget-mib); null when not given: see <see cref="KvBudgetMiBOrDefault"/>.</summary>
    public long? KvBudgetMiB { get; init; }
    /// <summary>
    /// The KV budget of the scenarios with a fixed default (64 MiB). The router scenario's default is instead each
    /// replica's share of the conversations (<see cref="RouterScenario"/>).
    /// </summary>
    public long KvBudgetMiBOrDefault => KvBudgetMiB ?? 64;
    /// <summary>Engine scenarios: positions per KV block (--block-size); by default the engine's: 16, or 32 for a KIVI type.</summary>
    public int BlockSize
    {
        get => _blockSize ?? new KvSharp.Engine.EngineOptions { KeyElementType = KeyElementType, ValueElementType = ValueElementType }.BlockSize;
        init => _blockSize = value;
    }

    private readonly int? _blockSize;
    /// <summary>Multiturn scenario: chat turns.</summary>
    public int Turns { get; init; } = 8;
    /// <summary>Serve scenario: the client counts to run, one after another (default 1, 4, 16).</summary>
    public int[]? Clients { get; init; }
    /// <summary>Serve scenario: words in the system prompt every conversation starts with (default 64; 0 = none).</summary>
    public int? SystemTokens { get; init; }
    /// <summary>
    /// Serve scenario: every request offers one function tool, so each reply is read for calls and streams only its
    /// text before where a call could begin (the served chat template must render tools).
    /// </summary>
    public bool Tools { get; init; }
    /// <summary>
    /// Serve scenario: "chat" (each turn resends the whole conversation to /v1/chat/completions) or "responses" (each
    /// turn sends its new message and the previous response's id to /v1/responses).
    /// </summary>
    public string Api { get; init; } = "chat";
    /// <summary>Serve scenario: an OpenAI-compatible server to drive instead of kvsharp's own in process.</summary>
    public string? Url { get; init; }
    /// <summary>Tiers scenario: the Redis or Garnet server to measure (HOST:PORT); null starts an embedded Garnet.</summary>
    public string? Redis { get; init; }
    /// <summary>Inspector scenario: the server's shortest time between two inspector snapshots (null: its default).</summary>
    public int? InspectorIntervalMs { get; init; }
    /// <summary>Inspector scenario: a Chromium-family executable that opens the page headless for the "with" side (null: a stream reader stands in).</summary>
    public string? Browser { get; init; }
    /// <summary>Router scenario: users chatting at once.</summary>
    public int Users { get; init; } = 24;
    /// <summary>Router scenario: the kvsharp serve replicas behind the router.</summary>
    public int Replicas { get; init; } = RouterScenario.DefaultReplicas;
    /// <summary>Skip the memory bandwidth measurement (tests).</summary>
    public bool MeasureBandwidth { get; init; } = true;

    /// <summary>"--clients 1,4 --clients 16" → [1, 4, 16]; null when not given.</summary>
    public static int[]? ParseClients(string[]? values)
    {
        if (values is not { Length: > 0 }) return null;
        return values.SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .Select(v => int.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n
                : throw new ArgumentException($"--clients takes positive whole numbers (e.g. 1,4,16), got '{v}'"))
            .ToArray();
    }
}
