using System.CommandLine;
using KvSharp.Cache.Tiers;
using KvSharp.Redis;

namespace KvSharp.Cli;

/// <summary>
/// The options that put tiers below the prefix cache's RAM (`kvsharp serve --kv-tier-disk DIR [--kv-tier-disk-mib N]
/// [--kv-tier-redis HOST:PORT]`): disk first (faster), then Redis (shared by every engine pointed at it).
/// </summary>
internal sealed class KvTierCliOptions
{
    public Option<string?> Disk { get; } = new("--kv-tier-disk")
    {
        Description = "directory for prefix blocks evicted from RAM: written there in the background, fetched back instead of recomputed",
    };

    public Option<long> DiskMiB { get; } = NumberOption.Create("--kv-tier-disk-mib", "byte budget of --kv-tier-disk, in MiB (least recently used blocks go first)",
        1024L, Allowed.AtLeast(1L));

    public Option<string?> Redis { get; } = new("--kv-tier-redis")
    {
        Description = "Redis or Garnet server (HOST:PORT, or a StackExchange.Redis configuration string) sharing evicted prefix blocks across engines",
    };

    public IEnumerable<Option> All => [Disk, DiskMiB, Redis];

    /// <summary>The tiers the options ask for (owning them), or null for none; the caller disposes it after the engine.</summary>
    public KvTiers? Create(ParseResult r)
    {
        var tiers = new List<IKvBlockTier>();
        if (r.GetValue(Disk) is { } directory)
        {
            OutputPaths.CheckDirectory("--kv-tier-disk", directory);
            tiers.Add(new DiskKvTier(directory, r.GetValue(DiskMiB) << 20));
        }
        else if (r.GetResult(DiskMiB) is { Implicit: false }) throw new ArgumentException("--kv-tier-disk-mib needs --kv-tier-disk DIR");
        // Connecting never fails: an unreachable server is retried in the background, and every lookup meanwhile is a miss.
        if (r.GetValue(Redis) is { } redis) tiers.Add(new RedisKvTier(redis));
        return tiers.Count == 0 ? null : new KvTiers(tiers, ownsTiers: true);
    }
}
