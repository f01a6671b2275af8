using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KvSharp.Tensors;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Measures sustained read bandwidth the way a decode step uses memory: a large array (far bigger than the caches)
/// streamed once, split over the same <see cref="KernelPool"/> threads the kernels use. Best of several passes, after
/// one untimed pass.
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
        const int Chunk = 1 << 20; // 1 MiB per work item: big enough to amortize scheduling, small enough to balance
        long chunks = bytes / Chunk;
        var data = (byte*)NativeMemory.AlignedAlloc((nuint)(chunks * Chunk), 64);
        try
        {
            // Touch every page so the first pass does not measure page faults.
            new Span<byte>(data, 1).Fill(1);
            for (long off = 0; off < chunks * Chunk; off += Chunk) new Span<float>(data + off, Chunk / 4).Fill(1f);
            var work = new ReadWork { Data = data, ChunkBytes = Chunk, Sums = (float*)NativeMemory.AllocZeroed((nuint)chunks * 4) };
            try
            {
                pool.Run(ref work, (int)chunks); // untimed: every thread started, every TLB entry warm
                double best = 0;
                for (int p = 0; p < passes; p++)
                {
                    long start = Stopwatch.GetTimestamp();
                    pool.Run(ref work, (int)chunks);
                    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    best = Math.Max(best, chunks * Chunk / seconds);
                }
                float check = 0;
                for (long i = 0; i < chunks; i++) check += work.Sums[i];
                if (check != chunks * (Chunk / 4f) * (passes + 1)) throw new InvalidOperationException("bandwidth check failed: the read was optimized away or wrong");
                return best;
            }
            finally
            {
                NativeMemory.Free(work.Sums);
            }
        }
        finally
        {
            NativeMemory.AlignedFree(data);
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
        public int ChunkBytes;
        public float* Sums;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            var p = (float*)(Data + (long)index * ChunkBytes);
            int n = ChunkBytes / 4;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int i = 0;
            for (; i + 32 <= n; i += 32)
            {
                a0 += Vector256.Load(p + i);
                a1 += Vector256.Load(p + i + 8);
                a2 += Vector256.Load(p + i + 16);
                a3 += Vector256.Load(p + i + 24);
            }
            float s = Vector256.Sum(a0 + a1 + a2 + a3);
            for (; i < n; i++) s += p[i];
            Sums[index] += s;
        }
    }
}
