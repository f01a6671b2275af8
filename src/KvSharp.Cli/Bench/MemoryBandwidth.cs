using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KvSharp.Tensors;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Measures sustained read bandwidth the way a decode step uses memory: a large array (far bigger than the caches)
/// on transparent huge pages, as the weights and the KV pool are (<see cref="HugePageMemory"/>), streamed once, each
/// of the <see cref="KernelPool"/>'s threads reading one contiguous share, as one-token products split their rows.
/// Best of several passes, after one untimed pass. (It read 4 KiB pages in 1 MiB chunks the threads took in turn; in
/// alternated runs on one host that read 28-44 GB/s where this reads 33-63, the host's own bandwidth moving as much.)
/// <para>
/// It is a lower bound on what the memory system can deliver, not the ceiling: a decode step that beats it (a ratio
/// above 1) reads faster than this probe, for instance because the weights it reads fit in the last-level cache
/// (<see cref="LastLevelCacheBytes"/>), so the "bandwidth limit" printed beside it is a floor of the true limit.
/// The probe's loop is compiled fully optimized up front: left to tiered compilation it ran as tier-0/OSR code for
/// the whole measurement (a few dozen milliseconds), which read low.
/// </para>
/// </summary>
internal static unsafe class MemoryBandwidth
{
    public const long DefaultBytes = 512L << 20;

    /// <summary>Bytes per second read, best of <paramref name="passes"/> streaming passes over <paramref name="bytes"/> bytes.</summary>
    public static double Measure(KernelPool pool, long bytes = DefaultBytes, int passes = 5)
    {
        int shares = pool.Threads;
        // Whole runs of 64 Ki floats per share, so each run's sum of ones is exact in float (below 2^24).
        const long Run = 1 << 16;
        long shareBytes = bytes / shares / (Run * 4) * (Run * 4);
        if (shareBytes == 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"too small to split over {shares} threads");
        var data = HugePageMemory.Allocate(shareBytes * shares);
        try
        {
            // Touch every page so the first pass does not measure page faults.
            for (long off = 0; off < shareBytes * shares; off += Run * 4) new Span<float>(data + off, (int)Run).Fill(1f);
            var work = new ReadWork { Data = data, ShareBytes = shareBytes, Run = Run, Sums = (double*)NativeMemory.AllocZeroed((nuint)shares * 8) };
            try
            {
                pool.Run(ref work, shares); // untimed: every thread started, every TLB entry warm
                double best = 0;
                for (int p = 0; p < passes; p++)
                {
                    long start = Stopwatch.GetTimestamp();
                    pool.Run(ref work, shares);
                    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    best = Math.Max(best, shareBytes * shares / seconds);
                }
                double check = 0;
                for (int i = 0; i < shares; i++) check += work.Sums[i];
                if (check != (double)shareBytes * shares / 4 * (passes + 1)) throw new InvalidOperationException("bandwidth check failed: the read was optimized away or wrong");
                return best;
            }
            finally
            {
                NativeMemory.Free(work.Sums);
            }
        }
        finally
        {
            HugePageMemory.Free(data);
        }
    }

    /// <summary>The largest CPU cache in bytes (Linux: /sys/devices/system/cpu/cpu0/cache), or null where it cannot be read.</summary>
    public static long? LastLevelCacheBytes()
    {
        const string dir = "/sys/devices/system/cpu/cpu0/cache";
        if (!Directory.Exists(dir)) return null;
        long? largest = null;
        try
        {
            foreach (string index in Directory.EnumerateDirectories(dir, "index*"))
            {
                string file = Path.Combine(index, "size");
                if (!File.Exists(file)) continue;
                string text = File.ReadAllText(file).Trim();
                long scale = text.EndsWith('K') ? 1024 : text.EndsWith('M') ? 1 << 20 : 1;
                if (long.TryParse(text.TrimEnd('K', 'M'), out long size)) largest = Math.Max(largest ?? 0, size * scale);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return largest;
    }

    private struct ReadWork : IParallelWork
    {
        public byte* Data;
        public long ShareBytes, Run;
        public double* Sums;

        /// <summary>One thread's contiguous share, summed a run of floats at a time (each run's sum exact in float).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            var share = (float*)(Data + index * ShareBytes);
            long n = ShareBytes / 4;
            double total = 0;
            for (long run = 0; run < n; run += Run)
            {
                var p = share + run;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (long i = 0; i < Run; i += 32)
                {
                    a0 += Vector256.Load(p + i);
                    a1 += Vector256.Load(p + i + 8);
                    a2 += Vector256.Load(p + i + 16);
                    a3 += Vector256.Load(p + i + 24);
                }
                total += Vector256.Sum(a0 + a1 + a2 + a3);
            }
            Sums[index] += total;
        }
    }
}
