using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KvSharp.Tensors;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Measures sustained read bandwidth the way a decode step uses memory: a large array (far bigger than the caches)
/// streamed once, split over the same <see cref="KernelPool"/> threads the kernels use. Best of several passes.
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
                if (check != chunks * (Chunk / 4f)) throw new InvalidOperationException("bandwidth check failed: the read was optimized away or wrong");
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

    private struct ReadWork : IParallelWork
    {
        public byte* Data;
        public int ChunkBytes;
        public float* Sums;

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
            Sums[index] = s;
        }
    }
}
