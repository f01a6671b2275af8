using KvSharp.Cache.Tiers;

namespace KvSharp.Engine;

/// <summary>
/// One KV tier below RAM (<see cref="KvTiers"/>: disk, Redis) at the snapshot's step: its <see cref="KvTierStats"/>
/// totals, the mean time of a lookup, and the write queue the tiers share.
/// </summary>
/// <param name="Name">The tier's name (<see cref="IKvBlockTier.Name"/>: <c>disk</c>, <c>redis</c>).</param>
/// <param name="Hits">Blocks fetched back from this tier instead of recomputed.</param>
/// <param name="Misses">Lookups the tier did not hold.</param>
/// <param name="Refused">Values that failed their checksum or were not the block looked up (recomputed).</param>
/// <param name="Timeouts">Lookups past the fetch deadline (recomputed).</param>
/// <param name="Errors">Reads and writes that threw (a dead server, a full disk).</param>
/// <param name="BytesIn">Bytes fetched from the tier.</param>
/// <param name="BytesOut">Bytes written to the tier.</param>
/// <param name="Writes">Evicted blocks written to the tier.</param>
/// <param name="Lookups">Lookups in the tier, whatever their outcome.</param>
/// <param name="FetchMeanMs">Mean time of a lookup, hit or miss, in milliseconds (0 before any).</param>
/// <param name="WriteQueue">Evicted blocks queued for the tiers and not yet written (one queue feeds every tier).</param>
/// <param name="WritesDropped">Evicted blocks never written because that queue was full (shared by every tier).</param>
public sealed record EngineSnapshotTier(
    string Name,
    long Hits,
    long Misses,
    long Refused,
    long Timeouts,
    long Errors,
    long BytesIn,
    long BytesOut,
    long Writes,
    long Lookups,
    double FetchMeanMs,
    long WriteQueue,
    long WritesDropped)
{
    /// <summary>Each tier of <paramref name="tiers"/>, in order; empty without tiers.</summary>
    public static EngineSnapshotTier[] Of(KvTiers? tiers)
    {
        if (tiers == null) return [];
        long queue = tiers.PendingWrites, dropped = tiers.DroppedWrites;
        return [.. tiers.Stats.Select(s =>
        {
            long lookups = s.Lookups;
            return new EngineSnapshotTier(s.Tier, s.Hits, s.Misses, s.Refused, s.Timeouts, s.Errors, s.BytesIn, s.BytesOut, s.Writes,
                lookups, lookups == 0 ? 0 : s.FetchTime.TotalMilliseconds / lookups, queue, dropped);
        })];
    }
}
