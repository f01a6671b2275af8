using KvSharp.Cache.Paged;
using KvSharp.Cache.Tiers;
using KvSharp.Tests.Bench;

namespace KvSharp.Tests.Tiers;

/// <summary>The tier set's promises: a full write queue drops instead of waiting; a tier that does not answer in time, or throws, is a miss.</summary>
public sealed class KvTiersTests
{
    /// <summary>A tier whose every call waits until released (or throws, if told to).</summary>
    private sealed class StuckTier(bool throws = false) : IKvBlockTier
    {
        public readonly TaskCompletionSource Release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string Name => "stuck";

        public async ValueTask PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellation) => await Release.Task;

        public async ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellation)
        {
            if (throws) throw new IOException("the server is gone");
            await Release.Task;
            return null;
        }

        public void Dispose() { }
    }

    private static KvBlockPool Pool() => new(SyntheticModelTests.Micro.ToConfig(64), 4, 4);

    [Fact]
    public void AFullWriteQueueDropsBlocksInsteadOfWaiting()
    {
        using var pool = Pool();
        var tier = new StuckTier();
        using var tiers = new KvTiers([tier], new KvTierOptions { WriteQueueBlocks = 1 });
        for (int i = 0; i < 4; i++) tiers.TryQueue(new KvTierBlock.Identity(1, 2, 3, (ulong)i), [1, 2, 3, 4], pool, 0);
        // One block is being written (stuck), one waits in the queue: the others were dropped, not waited for.
        Assert.True(tiers.DroppedWrites >= 2, $"{tiers.DroppedWrites} dropped");
        tier.Release.SetResult();
    }

    [Fact]
    public void ATierPastTheDeadlineOrThrowingIsAMiss()
    {
        using var pool = Pool();
        var stuck = new StuckTier();
        var broken = new StuckTier(throws: true);
        using var tiers = new KvTiers([stuck, broken], new KvTierOptions { FetchDeadline = TimeSpan.FromMilliseconds(20) });
        Assert.False(tiers.TryFetch(new KvTierBlock.Identity(1, 2, 3, 4), [1, 2, 3, 4], pool, 0));
        Assert.Equal(1, tiers.Stats[0].Timeouts);
        Assert.Equal(1, tiers.Stats[1].Errors);
        stuck.Release.SetResult();
    }

    [Fact]
    public void AValueOfAnotherBlockIsRefusedEvenUnderTheSameKey()
    {
        Span<int> tokens = [5, 6, 7, 8];
        var id = new KvTierBlock.Identity(1, 2, 3, 4);
        var value = new byte[KvTierBlock.EncodedLength(4, 16)];
        KvTierBlock.Encode(id, tokens, new byte[16], value);
        Assert.True(KvTierBlock.TryDecode(value, id, tokens, 16, out _, out _));
        Assert.False(KvTierBlock.TryDecode(value, id, [5, 6, 7, 9], 16, out _, out var collision));
        Assert.Contains("other tokens", collision);
        Assert.False(KvTierBlock.TryDecode(value, id with { Root = 9 }, tokens, 16, out _, out var salt));
        Assert.Contains("identity", salt);
        value[^9] ^= 1;
        Assert.False(KvTierBlock.TryDecode(value, id, tokens, 16, out _, out var flipped));
        Assert.Contains("checksum", flipped);
    }
}
