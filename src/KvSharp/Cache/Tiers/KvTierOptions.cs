namespace KvSharp.Cache.Tiers;

/// <summary>How <see cref="KvTiers"/> writes and fetches.</summary>
public sealed record KvTierOptions
{
    /// <summary>
    /// How long a prefix lookup waits for a tier before it recomputes the block instead: a slow or dead tier costs at
    /// most this per lookup, never a failed request.
    /// </summary>
    public TimeSpan FetchDeadline { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Evicted blocks waiting to be written; when full, further ones are dropped (counted), never waited for.</summary>
    public int WriteQueueBlocks { get; init; } = 64;

    /// <summary>How long one write to one tier may take before it is abandoned.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(5);

    internal void Validate()
    {
        if (FetchDeadline <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(FetchDeadline), FetchDeadline, "the fetch deadline must be positive");
        if (WriteQueueBlocks < 1) throw new ArgumentOutOfRangeException(nameof(WriteQueueBlocks), WriteQueueBlocks, "the write queue must hold at least one block");
        if (WriteTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(WriteTimeout), WriteTimeout, "the write timeout must be positive");
    }
}
