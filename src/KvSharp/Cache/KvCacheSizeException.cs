namespace KvSharp.Cache;

/// <summary>A KV cache or block pool was asked for more memory than the process can get (or than any size can be).</summary>
public sealed class KvCacheSizeException(string message, Int128 requestedBytes, long availableBytes) : ArgumentException(message)
{
    /// <summary>Bytes the cache would need (may exceed any 64-bit size).</summary>
    public Int128 RequestedBytes { get; } = requestedBytes;

    /// <summary>Bytes the process could get when it was asked.</summary>
    public long AvailableBytes { get; } = availableBytes;
}
