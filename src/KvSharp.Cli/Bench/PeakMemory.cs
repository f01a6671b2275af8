using System.Diagnostics;
using System.Runtime;

namespace KvSharp.Cli.Bench;

/// <summary>The process's peak working set (resident set), with a way to start counting afresh on Linux.</summary>
internal static class PeakMemory
{
    private static long s_carried; // the peak before the last ResetKeepingPeak, which Peak still reports

    /// <summary>
    /// Collects garbage, then resets the kernel's peak-RSS counter (VmHWM) to the current RSS by writing "5" to
    /// /proc/self/clear_refs, so memory used before (e.g. while writing a synthetic model) is not counted. Returns
    /// false where that is not possible (not Linux, or not permitted): the peak then covers the whole process.
    /// </summary>
    public static bool Reset()
    {
        s_carried = 0;
        return ClearCounter();
    }

    /// <summary>
    /// Starts the kernel's counter afresh after a measurement's own buffer (the bandwidth probe) was freed, while
    /// <see cref="Peak"/> keeps reporting the highest peak before it.
    /// </summary>
    public static void ResetKeepingPeak(long peakBefore)
    {
        s_carried = Math.Max(s_carried, peakBefore);
        ClearCounter();
    }

    private static bool ClearCounter()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public static long Peak()
    {
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return Math.Max(s_carried, p.PeakWorkingSet64);
    }
}
