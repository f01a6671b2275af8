using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// Native memory that Linux is asked to back with transparent huge pages: 2 MiB-aligned, whole 2 MiB pages, advised
/// MADV_HUGEPAGE before the first touch (THP's usual "madvise" mode serves only regions that ask). What a step
/// streams once per token or per step lives here: the interleaved weights (<see cref="HugePageSlabs"/>) and the KV
/// block pool. Streaming from 4 KiB pages ran far slower on the machines this was measured on (see HugePageSlabs).
/// </summary>
/// <remarks>
/// Only a hint: elsewhere than Linux, with THP off, or with a libc without madvise, the memory is simply 2 MiB-aligned.
/// <c>KVSHARP_HUGEPAGES=0</c> leaves every region on ordinary pages: to measure what the pages are worth, or where
/// the kernel's compaction for huge pages costs more than it gives.
/// </remarks>
public static unsafe class HugePageMemory
{
    /// <summary>A transparent huge page on x64.</summary>
    public const long PageBytes = 2L << 20;

    private const int MadviseHugePage = 14;

    /// <summary>False when KVSHARP_HUGEPAGES=0 asks for ordinary pages.</summary>
    public static bool Advised { get; } = Environment.GetEnvironmentVariable("KVSHARP_HUGEPAGES")?.Trim() != "0";

    /// <summary>
    /// At least <paramref name="bytes"/> bytes, uninitialised; free with <see cref="Free"/>. A region of a huge page or
    /// more is rounded up to whole huge pages and advised; a smaller one is plain 64-byte-aligned memory (a huge page
    /// would only cost it up to 2 MiB of resident memory for one TLB entry it does not need).
    /// </summary>
    public static byte* Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        if (bytes < PageBytes) return (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        long size = RoundUp(bytes);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)size, (nuint)PageBytes);
        // Before the first touch: the pages are chosen when they are first written.
        if (Advised && OperatingSystem.IsLinux())
        {
            try
            {
                _ = madvise((nint)p, (nuint)size, MadviseHugePage);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
            }
        }
        return p;
    }

    /// <summary><paramref name="bytes"/> rounded up to whole huge pages: what <see cref="Allocate"/> takes.</summary>
    public static long RoundUp(long bytes) => (bytes + PageBytes - 1) & ~(PageBytes - 1);

    public static void Free(byte* p) => NativeMemory.AlignedFree(p);

    [DllImport("libc", SetLastError = false)]
    private static extern int madvise(nint address, nuint length, int advice);
}
