using KvSharp.Cache;
using KvSharp.Cache.Policies;

namespace KvSharp.Engine;

/// <summary>How a session keeps its cache.</summary>
public sealed record SessionOptions
{
    public KvCacheMode CacheMode { get; init; } = KvCacheMode.Contiguous;
    /// <summary>Most tokens the session may hold (prompt + generated); default: the model's trained context length.</summary>
    public int? ContextLength { get; init; }
    /// <summary>How keys and values are stored: F32 (default, exact) or F16 (half the memory and the bytes read per step).</summary>
    public KvElementType KvElementType { get; init; } = KvElementType.F32;
    /// <summary>How keys are stored, where they differ from values (llama.cpp's -ctk); default: <see cref="KvElementType"/>.</summary>
    public KvElementType? KeyElementType { get; init; }
    /// <summary>How values are stored, where they differ from keys (llama.cpp's -ctv); default: <see cref="KvElementType"/>.</summary>
    public KvElementType? ValueElementType { get; init; }
    /// <summary>The keys' and values' types together, as the cache stores them.</summary>
    public KvElementFormat KvFormat => KvElementFormat.Of(KeyElementType ?? KvElementType, ValueElementType ?? KvElementType);
    /// <summary>
    /// When the next token would not fit in the context: <see cref="ContextOverflow.Stop"/> (default) ends generation
    /// with <see cref="FinishReason.ContextFull"/>; <see cref="ContextOverflow.Shift"/> shifts the context
    /// (<see cref="ContextShift"/>) and goes on, and so does a later prompt that would not fit.
    /// </summary>
    public ContextOverflow ContextOverflow { get; init; } = ContextOverflow.Stop;
    /// <summary>
    /// Positions at the start of the sequence a context shift keeps (llama.cpp's n_keep, counting BOS): default, the
    /// BOS token when the sequence starts with one, else none; a system prompt's length in tokens keeps the system prompt.
    /// </summary>
    public int? ContextShiftKeep { get; init; }
    /// <summary>
    /// Positions a context shift discards after the kept ones (llama.cpp's n_discard): default, half of the rest; more
    /// when a prompt needs more room.
    /// </summary>
    public int? ContextShiftDiscard { get; init; }
    /// <summary>
    /// Which positions the cache keeps (<see cref="KvCachePolicy"/>): <see cref="KvCachePolicy.Full"/> (default, or the
    /// model's own sliding window when its GGUF names one), a window, or sinks and a window. Under a window the cache
    /// holds O(window) rows and the sequence may run up to <see cref="ContextLength"/>, past the trained length.
    /// </summary>
    public KvCachePolicy? CachePolicy { get; init; }
    /// <summary>
    /// Whether the layers that attend through a sliding window of their own (Gemma 2/3's local layers) keep every
    /// position, as llama.cpp's --swa-full. By default (false) they keep a ring of their window
    /// (<see cref="KvCache.LocalLayerRows"/>), so most of such a model's cache stops growing with the context; a rewind
    /// further back than the ring holds (<see cref="KvCache.CanTruncateTo"/>) then recomputes the conversation.
    /// </summary>
    public bool FullLocalLayers { get; init; }
}
