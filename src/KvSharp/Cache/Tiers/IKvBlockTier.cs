namespace KvSharp.Cache.Tiers;

/// <summary>
/// Storage below RAM for prefix blocks the pool let go of (a directory, a Redis server): opaque values under string
/// keys, the way LMCache's storage backends are. What a value holds and how it is checked is
/// <see cref="KvTierBlock"/>'s business, so a tier only stores bytes. Implementations are called from a background
/// writer and from the engine's thread at once, so they must be thread-safe; errors are theirs to swallow or throw
/// (a throwing tier counts as a miss, never as a failed request).
/// </summary>
public interface IKvBlockTier : IDisposable
{
    /// <summary>A short name for metrics and logs ("disk", "redis").</summary>
    string Name { get; }

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, replacing what was there.</summary>
    ValueTask PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellation);

    /// <summary>The value under <paramref name="key"/>, or null if the tier does not hold it.</summary>
    ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellation);
}
