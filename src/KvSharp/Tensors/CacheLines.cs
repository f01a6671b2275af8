using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>Prefetch hints: asks the memory system for lines before a kernel reads them. Changes no result.</summary>
public static class CacheLines
{
    /// <summary>Requests into L2 the cache lines of <paramref name="bytes"/> bytes at <paramref name="start"/>; skipped without SSE.</summary>
    public static unsafe void Prefetch(byte* start, nint bytes)
    {
        if (!Sse.IsSupported) return;
        for (nint i = 0; i < bytes; i += 64) Sse.Prefetch1(start + i);
    }

    /// <summary><see cref="Prefetch(byte*, nint)"/> of the bytes at a reference (pinned while the hints are issued).</summary>
    public static unsafe void Prefetch(ref byte start, nint bytes)
    {
        fixed (byte* p = &start) Prefetch(p, bytes); // a prefetch never faults, but the address must stay put
    }
}
