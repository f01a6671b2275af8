using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;

namespace KvSharp.Engine;

/// <summary>How an <see cref="LlmEngine"/> divides its KV memory and schedules work.</summary>
public sealed record EngineOptions
{
    /// <summary>
    /// Positions per KV block: by default 16, or 32 for a KIVI type (<see cref="KvFormat"/>), whose groups of 32
    /// positions a block must hold whole (a multiple of 32).
    /// </summary>
    public int BlockSize
    {
        get => _blockSize ?? (KvFormat.RowsStandAlone ? 16 : KvSharp.Tensors.KvKivi.GroupRows);
        init => _blockSize = value;
    }

    private readonly int? _blockSize;
    /// <summary>KV memory budget in bytes (rounded down to whole blocks). Ignored when <see cref="BlockCount"/> is set.</summary>
    public long KvBudgetBytes { get; init; } = 256L << 20;
    /// <summary>How keys and values are stored: F32 (default, exact) or F16 (twice the tokens in the same budget).</summary>
    public KvElementType KvElementType { get; init; } = KvElementType.F32;
    /// <summary>How keys are stored, where they differ from values (llama.cpp's -ctk); default: <see cref="KvElementType"/>.</summary>
    public KvElementType? KeyElementType { get; init; }
    /// <summary>How values are stored, where they differ from keys (llama.cpp's -ctv); default: <see cref="KvElementType"/>.</summary>
    public KvElementType? ValueElementType { get; init; }
    /// <summary>The keys' and values' types together, as the block pool stores them.</summary>
    public KvElementFormat KvFormat => KvElementFormat.Of(KeyElementType ?? KvElementType, ValueElementType ?? KvElementType);
    /// <summary>Exact number of blocks, overriding <see cref="KvBudgetBytes"/>.</summary>
    public int? BlockCount { get; init; }
    /// <summary>Most tokens one step computes (decodes plus prefill chunks): bounds step latency and scratch memory.</summary>
    public int MaxStepTokens { get; init; } = 256;
    /// <summary>Most sequences decoding at once (never more than <see cref="MaxStepTokens"/>).</summary>
    public int MaxRunningSequences { get; init; } = 64;
    /// <summary>Sequences the scheduler admits at once: <see cref="MaxRunningSequences"/>, at most <see cref="MaxStepTokens"/> (one token each).</summary>
    public int RunningLimit => Math.Min(MaxRunningSequences, MaxStepTokens);

    /// <summary>
    /// Bytes the engine sets aside from <see cref="KvBudgetBytes"/> for KIVI's exact rows, which each running sequence
    /// holds beside the pool (<see cref="KvElementFormat.ExactBytesPerSequence"/>): as many as <see cref="RunningLimit"/>
    /// sequences hold; 0 for the types whose rows all live in the pool.
    /// </summary>
    public long ExactRowsBytes(KvSharp.Models.ModelConfig config) => KvFormat.ExactBytesPerSequence(config) * RunningLimit;
    /// <summary>Longest sequence (prompt + output); default: the model's trained context length.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Reuse cached KV blocks of identical prefixes across requests and turns.</summary>
    public bool PrefixCaching { get; init; } = true;
    /// <summary>The prefix cache's block hash (tests substitute a colliding one); default <see cref="PrefixHasher.Hash"/>.</summary>
    public BlockHashFunction? HashFunction { get; init; }
    /// <summary>
    /// The cache policy of requests that name none (<see cref="EngineRequest.CachePolicy"/>); default the model's
    /// (<see cref="KvCachePolicy.OfModel"/>: its sliding window, or full).
    /// </summary>
    public KvCachePolicy? CachePolicy { get; init; }

    /// <summary>
    /// Storage below RAM for prefix blocks (<see cref="KvSharp.Cache.Tiers.KvTiers"/>: disk, Redis): blocks the pool
    /// evicts are written down, and a prompt whose prefix left RAM fetches them back instead of recomputing. The
    /// caller owns and disposes it. Null: none.
    /// </summary>
    public KvSharp.Cache.Tiers.KvTiers? KvTiers { get; init; }

    /// <summary>
    /// Keep every position of a model's local layers (Gemma 2/3's sliding-window layers), as llama.cpp's --swa-full:
    /// by default the pool keeps those layers apart (<see cref="KvLayerGroups"/>) and a sequence lets go of their
    /// blocks behind the window. They are kept whole anyway with KV tiers (which store blocks of every layer) and with
    /// a KV type quantized in groups along positions (KIVI).
    /// </summary>
    public bool FullLocalLayers { get; init; }

    /// <summary>The layer groups of the engine's pool for <paramref name="config"/>: local layers apart unless <see cref="FullLocalLayers"/> or a tier or KV type needs them whole.</summary>
    public KvLayerGroups LayerGroups(KvSharp.Models.ModelConfig config) =>
        KvLayerGroups.For(config, !FullLocalLayers && KvTiers == null && KvFormat.RowsStandAlone);

    internal void Validate()
    {
        if (BlockSize <= 0) throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "block size must be positive");
        if (MaxStepTokens <= 0) throw new ArgumentOutOfRangeException(nameof(MaxStepTokens), MaxStepTokens, "step token budget must be positive");
        if (MaxRunningSequences <= 0) throw new ArgumentOutOfRangeException(nameof(MaxRunningSequences), MaxRunningSequences, "must be positive");
        if (BlockCount is <= 0) throw new ArgumentOutOfRangeException(nameof(BlockCount), BlockCount, "block count must be positive");
        if (ContextLength is <= 0) throw new ArgumentOutOfRangeException(nameof(ContextLength), ContextLength, "context length must be positive");
    }
}
