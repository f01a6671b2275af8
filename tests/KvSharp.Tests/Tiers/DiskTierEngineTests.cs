using System.Diagnostics.Metrics;
using KvSharp.Cache.Tiers;
using static KvSharp.Tests.Tiers.TierEngineHarness;

namespace KvSharp.Tests.Tiers;

/// <summary>
/// The disk tier under an engine's prefix cache: a prefix evicted from RAM comes back from disk and the request's
/// output (tokens and log-probabilities) is bit-identical to recomputing it; another tenant's salt never fetches it;
/// a corrupted block file is refused and recomputed; the tier's counts are instruments of the engine's meter.
/// </summary>
public sealed class DiskTierEngineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-tier-").FullName;
    private readonly DiskKvTier _disk;
    private readonly TierEngineHarness _h;

    public DiskTierEngineTests()
    {
        _disk = new DiskKvTier(_dir, 64L << 20);
        _h = new TierEngineHarness(_disk);
    }

    public void Dispose()
    {
        _h.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task APrefixEvictedFromRamComesBackFromDiskBitIdentical()
    {
        await _h.ComputeAndEvictSharedAsync();
        Assert.True(_disk.Count >= 5, $"{_disk.Count} blocks on disk");
        var fetched = _h.Run(Request(Shared));
        _h.AssertSharedPrefixFromTier();
        Assert.Equal(5, _h.Stats.Hits);
        _h.AssertRecomputed(Request(Shared), fetched);
        _h.Engine.Pool.Verify();
    }

    [Fact]
    public async Task TheTiersCountsAreInstrumentsOfTheEnginesMeterTaggedByTier()
    {
        var counts = new Dictionary<string, long>();
        int latencies = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, _h.Engine.Metrics.Meter) && instrument.Name.StartsWith("kvsharp.kv_tier.")) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            if (i.Name != "kvsharp.kv_tier.writes_dropped") Assert.Equal("disk", tags.ToArray().Single(tag => tag.Key == "tier").Value);
            counts[i.Name] = v;
        });
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => latencies++);
        listener.Start();
        await _h.ComputeAndEvictSharedAsync();
        _h.Run(Request(Shared));
        listener.RecordObservableInstruments();
        Assert.Equal(5, counts["kvsharp.kv_tier.hits"]);
        Assert.True(counts["kvsharp.kv_tier.writes"] >= 5);
        Assert.True(counts["kvsharp.kv_tier.bytes_in"] > 5 * _h.Engine.Pool.BytesPerBlock);
        Assert.True(counts["kvsharp.kv_tier.bytes_out"] >= counts["kvsharp.kv_tier.bytes_in"]);
        Assert.True(latencies >= 5);
    }

    [Fact]
    public async Task AnotherTenantsSaltNeverFetchesTheBlocks()
    {
        await _h.ComputeAndEvictSharedAsync(salt: "tenant-a");
        var other = _h.Run(Request(Shared, salt: "tenant-b"));
        Assert.Equal(0, _h.Engine.PrefixCache.TierHitTokens);
        Assert.Equal(0, _h.Stats.Hits);
        _h.AssertRecomputed(Request(Shared), other);
        _h.Run(Request(Shared, salt: "tenant-a"));
        _h.AssertSharedPrefixFromTier();
    }

    [Fact]
    public async Task ACorruptedBlockFileIsRefusedAndRecomputed()
    {
        await _h.ComputeAndEvictSharedAsync();
        foreach (var file in Directory.GetFiles(_disk.Directory))
        {
            var bytes = File.ReadAllBytes(file);
            bytes[bytes.Length / 2] ^= 0x10; // one bit in the middle of the K/V bytes
            File.WriteAllBytes(file, bytes);
        }
        var output = _h.Run(Request(Shared));
        Assert.Equal(0, _h.Engine.PrefixCache.TierHitTokens);
        Assert.Equal(1, _h.Stats.Refused); // the first block fails, so the chain stops there
        _h.AssertRecomputed(Request(Shared), output);
    }
}
