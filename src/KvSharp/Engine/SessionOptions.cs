using KvSharp.Cache;

namespace KvSharp.Engine;

/// <summary>How a session keeps its cache.</summary>
public sealed record SessionOptions
{
    public KvCacheMode CacheMode { get; init; } = KvCacheMode.Contiguous;
    /// <summary>Most tokens the session may hold (prompt + generated); default: the model's trained context length.</summary>
    public int? ContextLength { get; init; }
}
