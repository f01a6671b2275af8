using KvSharp.Cli.Bench;
using KvSharp.Tensors;

namespace KvSharp.Tests.Bench;

/// <summary>The bandwidth probe reads every byte of each thread's share once per pass (its own sum check), whatever the split.</summary>
public class MemoryBandwidthTests
{
    [Theory]
    [InlineData(1, 8L << 20)]
    [InlineData(2, 8L << 20)]
    // Not a multiple of the threads' runs: each share is cut to whole runs, and the check still holds.
    [InlineData(3, (8L << 20) + 12345)]
    public void TheProbeReadsEveryShareAndReportsARate(int threads, long bytes)
    {
        using var pool = new KernelPool(threads);
        double rate = MemoryBandwidth.Measure(pool, bytes, passes: 2);
        Assert.True(rate > 0 && double.IsFinite(rate), $"rate {rate}");
    }

    [Fact]
    public void AProbeTooSmallToSplitSaysSo()
    {
        using var pool = new KernelPool(2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => MemoryBandwidth.Measure(pool, 1000, passes: 1));
        Assert.Contains("2 threads", e.Message);
    }
}
