using KvSharp.Models;

namespace KvSharp.Synthetic;

/// <summary>
/// The hyperparameters of a random-weight model used for benchmarks: named after a real model (or llama2.c's
/// stories models) so the numbers mean something, but with made-up weights and vocabulary so nothing is downloaded.
/// </summary>
/// <param name="Name">Lower-case name used on the command line and in cache file names.</param>
/// <param name="TiedOutput">The output projection is token_embd.weight (no output.weight tensor), as in the real model.</param>
public sealed record SyntheticShape(
    string Name,
    string Description,
    int EmbeddingDim,
    int LayerCount,
    int HeadCount,
    int KvHeadCount,
    int FeedForwardDim,
    int VocabSize,
    int ContextLength,
    float RopeTheta = 10000f,
    float RmsNormEps = 1e-5f,
    bool TiedOutput = false)
{
    public int HeadDim => EmbeddingDim / HeadCount;

    /// <summary>llama2.c's stories15M: dim 288, 6 layers, 6 heads. Context 4096 here so the cache scenario (2000 + 500) fits.</summary>
    public static readonly SyntheticShape Tiny = new("tiny", "llama2.c stories15M shape", 288, 6, 6, 6, 768, 32000, 4096);

    /// <summary>llama2.c's stories110M: dim 768, 12 layers, 12 heads, context 1024.</summary>
    public static readonly SyntheticShape Small = new("small", "llama2.c stories110M shape", 768, 12, 12, 12, 2048, 32000, 1024);

    /// <summary>SmolLM2-135M: grouped-query attention (9 query heads share 3 KV heads), tied embeddings.</summary>
    public static readonly SyntheticShape SmolLm2 = new("smollm2-135m", "SmolLM2-135M shape (GQA 9/3, tied output)",
        576, 30, 9, 3, 1536, 49152, 8192, RopeTheta: 100000f, TiedOutput: true);

    /// <summary>Llama-3.2-1B: GQA 32/8, head dim 64, 128256-token vocabulary, tied embeddings (trained context 131072; 8192 here).</summary>
    public static readonly SyntheticShape Llama32_1B = new("llama-3.2-1b", "Llama-3.2-1B shape (GQA 32/8, tied output)",
        2048, 16, 32, 8, 8192, 128256, 8192, RopeTheta: 500000f, TiedOutput: true);

    public static IReadOnlyList<SyntheticShape> All { get; } = [Tiny, Small, SmolLm2, Llama32_1B];

    private static readonly Dictionary<string, SyntheticShape> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["gqa"] = SmolLm2,
        ["smollm2"] = SmolLm2,
        ["1b"] = Llama32_1B,
        ["llama-1b"] = Llama32_1B,
    };

    /// <summary>Finds a shape by name (case-insensitive; also "gqa" and "1b").</summary>
    public static SyntheticShape Parse(string name)
    {
        foreach (var s in All)
            if (string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)) return s;
        if (Aliases.TryGetValue(name, out var alias)) return alias;
        throw new ArgumentException($"unknown synthetic shape '{name}' (known: {string.Join(", ", All.Select(s => s.Name))}, aliases gqa, 1b)");
    }

    /// <summary>The config <see cref="ModelConfig.FromGguf"/> should read back from a file built with this shape.</summary>
    public ModelConfig ToConfig(int? contextLength = null) => new()
    {
        Architecture = "llama",
        EmbeddingDim = EmbeddingDim,
        LayerCount = LayerCount,
        HeadCount = HeadCount,
        KvHeadCount = KvHeadCount,
        HeadDim = HeadDim,
        FeedForwardDim = FeedForwardDim,
        VocabSize = VocabSize,
        TrainedContextLength = contextLength ?? ContextLength,
        RmsNormEps = RmsNormEps,
        RopeTheta = RopeTheta,
        RopeStyle = RopeStyle.Normal,
        RopeDimensions = HeadDim,
    };

    /// <summary>Parameters in the weight matrices (the embedding counted once when tied), not counting norms.</summary>
    public long ParameterCount
    {
        get
        {
            long e = EmbeddingDim, kv = (long)KvHeadCount * HeadDim, q = (long)HeadCount * HeadDim;
            long layer = e * q + 2 * e * kv + q * e + 3 * e * FeedForwardDim;
            return LayerCount * layer + (TiedOutput ? 1 : 2) * e * VocabSize;
        }
    }
}
