namespace KvSharp.Cache;

/// <summary>Where a session keeps its keys and values.</summary>
public enum KvCacheMode
{
    /// <summary>No cache: every step recomputes the whole sequence. The baseline that shows what the cache buys.</summary>
    None,
    /// <summary>Grows as the sequence grows (capacity doubles), up to the session's context length.</summary>
    Contiguous,
    /// <summary>Allocated once at the session's context length; never reallocates.</summary>
    Static,
}
