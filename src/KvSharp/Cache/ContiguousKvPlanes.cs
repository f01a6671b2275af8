using System.Runtime.InteropServices;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>
/// The bytes of a <see cref="ContiguousKvStorage{TKey, TValue}"/>: its planes (per layer, K or V and KV head: the rows,
/// then their side data), zeroed. A cache of a huge page or more lives in one native region on transparent huge pages
/// (<see cref="HugePageMemory"/>), each plane from a cache line, as the paged pool does: a long-context decode streams
/// every head's rows once per token, and from 4 KiB pages that streaming was measurably slower. A smaller cache, or any
/// cache with <c>KVSHARP_HUGEPAGES=0</c>, keeps one managed array per plane.
/// </summary>
/// <remarks>
/// The region is freed exactly once: by <see cref="Dispose"/> (the cache's, or a grow that replaces it), or by its
/// handle's finalizer if the cache is dropped undisposed. A span from <see cref="Plane"/> is valid until then: the
/// storage's methods keep this object alive while a kernel reads one (<see cref="GC.KeepAlive"/>).
/// Measured on a shared 2-core Zen 4 VM, in one process, interleaved rounds, medians of per-round ratios
/// (<c>KvSharp.Benchmarks alternate-kv</c>): decode of the synthetic `small` model (Q8_0) with 1,000 cached positions
/// (74 MB of F32 KV), 8 tokens a round, huge pages against managed arrays: 1.07x on two threads and 1.07x on one over
/// 100 rounds when the machine was less loaded; 1.01-1.07x on two and 0.99-1.07x on one in later runs under a load of
/// 15-19 on the two cores. The attention over the same cache alone, one thread, 100 rounds: 1.17x and 1.20x (the
/// decode also streams 117 MB of weights, already on huge pages, which dilutes it).
/// </remarks>
internal sealed unsafe class ContiguousKvPlanes : IDisposable
{
    // Native: the region, each plane's start in it, and its length; null when managed or disposed.
    private readonly HugePageHandle? _region;
    private readonly long[]? _at;
    private byte* _base;
    // Managed: one array per plane; null when native or disposed.
    private byte[][]? _arrays;
    private readonly int[] _lengths;

    /// <summary>Planes of <paramref name="lengths"/> bytes each; on huge pages when <paramref name="hugePages"/> and they add up to one or more.</summary>
    public ContiguousKvPlanes(int[] lengths, bool hugePages)
    {
        _lengths = lengths;
        var at = new long[lengths.Length];
        long total = 0;
        for (int i = 0; i < lengths.Length; i++)
        {
            at[i] = total;
            total += (lengths[i] + 63L) & ~63L;
        }
        if (hugePages && total >= HugePageMemory.PageBytes)
        {
            _at = at;
            _region = new HugePageHandle(total);
            _base = _region.Pointer;
            NativeMemory.Clear(_base, (nuint)total);
        }
        else
        {
            _arrays = new byte[lengths.Length][];
            for (int i = 0; i < lengths.Length; i++) _arrays[i] = new byte[lengths[i]];
        }
    }

    /// <summary>The native region (null for managed planes), for tests of its lifetime.</summary>
    internal HugePageHandle? Region => _region;

    /// <summary>Whether the planes are in one native region advised for huge pages (false once disposed).</summary>
    public bool OnHugePages => _base != null;

    /// <summary>Plane <paramref name="index"/>'s bytes; throws <see cref="ObjectDisposedException"/> once the cache is disposed.</summary>
    public Span<byte> Plane(int index) =>
        _base != null ? new Span<byte>(_base + _at![index], _lengths[index]) : (_arrays ?? throw Disposed())[index];

    public void ThrowIfDisposed()
    {
        if (_base == null && _arrays == null) throw Disposed();
    }

    private static ObjectDisposedException Disposed() => new(nameof(KvCache), "the KV cache was disposed");

    public void Dispose()
    {
        _base = null;
        _arrays = null;
        _region?.Dispose();
    }
}
