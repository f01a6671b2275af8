using KvSharp.Cache;

namespace KvSharp.Engine;

/// <summary>How a session keeps its cache.</summary>
public sealed record SessionOptions
{
    public KvCacheMode CacheMode { get; init; } = KvCacheMode.Contiguous;
    /// <summary>Most tokens the session may hold (prompt + generated); default: the model's trained context length.</summary>
    public int? ContextLength { get; init; }
    /// <summary>How keys and values are stored: F32 (default, exact) or F16 (half the memory and the bytes read per step).</summary>
    public KvElementType KvElementType { get; init; } = KvElementType.F32;
}
