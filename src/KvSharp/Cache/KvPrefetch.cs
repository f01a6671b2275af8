using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace KvSharp.Cache;

/// <summary>
/// Asks the memory system for a head's first key and value rows before the attention that reads them starts.
/// Decode attention is many short items (one sequence's head, tens of positions each) whose rows lie in a few 4 KiB
/// runs: the hardware prefetcher learns each run only after its first misses, so an item spends most of its time
/// waiting. The forward pass announces the item a thread will run next, and its rows arrive while the current one
/// computes. Only a hint: it changes no result, and is skipped where the CPU has no prefetch instruction.
/// </summary>
public static class KvPrefetch
{
    /// <summary>
    /// Positions announced per item: enough to cover a short context (the case the hint is for), small enough
    /// (32 KiB of F32 rows at head_dim 64) that the lines are still in L2 when the item runs.
    /// </summary>
    public const int Positions = 64;

    /// <summary>Requests into L2 the cache lines of <paramref name="bytes"/> bytes at <paramref name="start"/>.</summary>
    public static unsafe void Lines(byte* start, nint bytes)
    {
        if (!Sse.IsSupported) return;
        for (nint i = 0; i < bytes; i += 64) Sse.Prefetch1(start + i);
    }

    /// <summary><see cref="Lines"/> over the first <paramref name="elements"/> of <paramref name="rows"/>.</summary>
    public static unsafe void Rows<TElement>(Span<TElement> rows, int elements) where TElement : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(rows[..Math.Min(rows.Length, elements)]);
        fixed (byte* p = bytes) Lines(p, bytes.Length); // a prefetch never faults, but the span must stay put
    }
}
