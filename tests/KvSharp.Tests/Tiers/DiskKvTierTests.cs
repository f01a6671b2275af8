using KvSharp.Cache.Tiers;

namespace KvSharp.Tests.Tiers;

/// <summary>The disk tier alone: a byte budget kept by deleting the least recently used files, writes through a temporary file and a rename, files adopted at start.</summary>
public sealed class DiskKvTierTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-disk-tier-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Value(byte fill) => Enumerable.Repeat(fill, 100).ToArray();

    [Fact]
    public async Task KeepsTheBudgetByDroppingTheLeastRecentlyUsed()
    {
        using var disk = new DiskKvTier(_dir, 250);
        await disk.PutAsync("a:1", Value(1), TestContext.Current.CancellationToken);
        await disk.PutAsync("b:2", Value(2), TestContext.Current.CancellationToken);
        Assert.Equal(Value(1), await disk.GetAsync("a:1", TestContext.Current.CancellationToken)); // a is now more recent than b
        await disk.PutAsync("c:3", Value(3), TestContext.Current.CancellationToken);
        Assert.Null(await disk.GetAsync("b:2", TestContext.Current.CancellationToken));
        Assert.Equal(Value(1), await disk.GetAsync("a:1", TestContext.Current.CancellationToken));
        Assert.Equal(Value(3), await disk.GetAsync("c:3", TestContext.Current.CancellationToken));
        Assert.Equal(200, disk.UsedBytes);
        Assert.Equal(2, Directory.GetFiles(_dir).Length); // no temporary file left behind
    }

    [Fact]
    public async Task ARestartAdoptsTheFilesAndDeletesStrayTemporaryOnes()
    {
        using (var disk = new DiskKvTier(_dir, 1000)) await disk.PutAsync("a:1", Value(7), TestContext.Current.CancellationToken);
        File.WriteAllBytes(Path.Combine(_dir, "kvsharp-x.kvblock.tmp-123"), [1, 2, 3]); // a crash mid-write
        using var again = new DiskKvTier(_dir, 1000);
        Assert.Equal(Value(7), await again.GetAsync("a:1", TestContext.Current.CancellationToken));
        Assert.Equal(100, again.UsedBytes);
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task AKeyThatCouldLeaveTheDirectoryIsRefused()
    {
        using var disk = new DiskKvTier(_dir, 1000);
        await Assert.ThrowsAsync<ArgumentException>(async () => await disk.PutAsync("../escape", Value(1), TestContext.Current.CancellationToken));
    }
}
