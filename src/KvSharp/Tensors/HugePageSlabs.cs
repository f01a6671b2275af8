namespace KvSharp.Tensors;

/// <summary>
/// Memory for interleaved weights (<see cref="InterleavedRows"/>): matrices back to back in 2 MiB-aligned slabs that
/// Linux is asked to back with transparent huge pages (madvise MADV_HUGEPAGE; THP's usual "madvise" mode serves only
/// regions that ask). One-token decode streams every weight once per token, and streams it much faster from 2 MiB
/// pages; with an allocation per matrix, most of a model's matrices (a `small` model's are 0.3-1.7 MB) could never
/// sit on one.
/// </summary>
/// <remarks>
/// Measured for issue 18 on a shared 2-core Zen 4 VM, in one process, interleaved rounds, medians of per-round ratios.
/// Decode of the synthetic `small` model, the same file loaded twice, 16-token rounds alternating between the copy on
/// these slabs and one on separately allocated 4 KiB pages (150 rounds): Q8_0 1.44x on two threads (1.55x as VEX code
/// with 16 registers, DOTNET_EnableAVX512=0), 1.62x on one; Q4_0 1.39x (1.41x) on two, 1.09-1.13x on one. The
/// one-token kernels alone over the same matrices: 1.28-1.56x; a loop that only loads the bytes gains as much, and
/// the copies back to back without the hint gained nothing (0.90-1.20x), so it is the page size. (Per-entry page
/// walks, nested under a hypervisor, and hardware prefetchers that stop at 4 KiB page ends are the likely causes.)
/// An earlier try of MADV_HUGEPAGE recorded no decode change (docs/benchmarks-history.md; how it allocated is not
/// recorded: per matrix, a `small` model's 0.3-1.7 MB matrices cannot fill a 2 MiB page).
/// A matrix of at least half a slab gets a slab of its own; smaller ones share the open slab. A slab is freed with the
/// last matrix in it. Only the pages a slab's matrices touch become resident. Elsewhere than Linux, or where the hint
/// is refused, the memory is simply 2 MiB-aligned.
/// </remarks>
internal static unsafe class HugePageSlabs
{
    /// <summary>Bytes of a shared slab.</summary>
    public const long SlabBytes = 32L << 20;

    private static readonly object s_gate = new();
    private static Slab? s_open;

    /// <summary>One 2 MiB-aligned region and how many live allocations it holds.</summary>
    public sealed class Slab
    {
        internal byte* Base;
        internal long Size, Used;
        internal int Live;
    }

    /// <summary><paramref name="bytes"/> bytes, 64-byte aligned, in <paramref name="slab"/>; give them back with <see cref="Free"/>.</summary>
    public static byte* Allocate(long bytes, out Slab slab)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        bytes = (bytes + 63) & ~63L;
        lock (s_gate)
        {
            if (bytes >= SlabBytes / 2)
            {
                slab = New(HugePageMemory.RoundUp(bytes));
            }
            else
            {
                if (s_open == null || s_open.Size - s_open.Used < bytes) s_open = New(SlabBytes);
                slab = s_open;
            }
            byte* p = slab.Base + slab.Used;
            slab.Used += bytes;
            slab.Live++;
            return p;
        }
    }

    /// <summary>Gives back one allocation of <paramref name="slab"/>; the slab's memory goes with its last.</summary>
    public static void Free(Slab slab)
    {
        lock (s_gate)
        {
            if (--slab.Live > 0) return;
            if (s_open == slab) s_open = null;
            HugePageMemory.Free(slab.Base);
            slab.Base = null;
        }
    }

    private static Slab New(long size) => new() { Base = HugePageMemory.Allocate(size), Size = size };
}
