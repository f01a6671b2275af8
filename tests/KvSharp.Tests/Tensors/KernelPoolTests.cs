using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

public class KernelPoolTests
{
    private struct CountWork : IParallelWork
    {
        public int[] Hits;
        public void Execute(int index) => Interlocked.Increment(ref Hits[index]);
    }

    private struct ThrowWork : IParallelWork
    {
        public void Execute(int index)
        {
            if (index == 5) throw new InvalidOperationException("boom at 5");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RunsEveryIndexExactlyOnce(int threads)
    {
        using var pool = new KernelPool(threads);
        Assert.Equal(threads, pool.Threads);
        foreach (int count in new[] { 0, 1, 2, 3, 17, 1000 })
        {
            var hits = new int[count];
            var work = new CountWork { Hits = hits };
            for (int rep = 0; rep < 300; rep++) pool.Run(ref work, count);
            Assert.All(hits, h => Assert.Equal(300, h));
        }
    }

    [Fact]
    public void SurvivesWorkersFallingAsleep()
    {
        // Zero spin time: every Run must wake blocked workers through the monitor path.
        using var pool = new KernelPool(3, TimeSpan.Zero);
        var hits = new int[64];
        var work = new CountWork { Hits = hits };
        for (int rep = 0; rep < 200; rep++)
        {
            pool.Run(ref work, 64);
            if (rep % 50 == 0) Thread.Sleep(5);
        }
        Assert.All(hits, h => Assert.Equal(200, h));
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(4, 0)]
    [InlineData(4, 50)]
    public void StressManyShortRuns(int threads, int spinMicroseconds)
    {
        // Late-waking workers must never run an index of a later Run nor run one twice.
        using var pool = new KernelPool(threads, TimeSpan.FromTicks(spinMicroseconds * 10));
        var rng = new Random(threads * 100 + spinMicroseconds);
        var hits = new int[8];
        for (int rep = 0; rep < 5000; rep++)
        {
            int count = 1 + rng.Next(hits.Length);
            Array.Clear(hits);
            var work = new CountWork { Hits = hits };
            pool.Run(ref work, count);
            for (int i = 0; i < hits.Length; i++) Assert.Equal(i < count ? 1 : 0, hits[i]);
        }
    }

    [Fact]
    public void ExceptionsReachTheCallerAndThePoolStaysUsable()
    {
        using var pool = new KernelPool(2);
        var bad = new ThrowWork();
        var ex = Assert.Throws<InvalidOperationException>(() => pool.Run(ref bad, 20));
        Assert.Equal("boom at 5", ex.Message);
        var hits = new int[10];
        var work = new CountWork { Hits = hits };
        pool.Run(ref work, 10);
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void WarmRunDoesNotAllocate()
    {
        using var pool = new KernelPool(2);
        var work = new CountWork { Hits = new int[100] };
        for (int i = 0; i < 10; i++) pool.Run(ref work, 100);
        // Three windows of 100 runs: an allocation per run would show in every one. The runtime's own once-off work on
        // this thread (seen once: 7,776 bytes in one window of the AVX2-only rerun, never again in reruns) lands in one.
        var allocated = new long[3];
        for (int w = 0; w < allocated.Length; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++) pool.Run(ref work, 100);
            allocated[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.True(allocated.Contains(0), $"every window of 100 warm runs allocated: {string.Join(", ", allocated)} bytes");
    }
}
