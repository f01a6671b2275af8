using KvSharp.Cache;
using KvSharp.Models;

namespace KvSharp.Cli;

/// <summary>
/// Checks KV cache sizes against the machine's memory before anything is allocated, so a context or budget that
/// cannot fit is one line saying what it needs, what there is, and the largest value that fits, instead of an
/// overflow or out-of-memory exception from the allocation.
/// </summary>
internal static class KvMemory
{
    /// <summary>
    /// Memory this process can still use: the physical memory or container limit the GC sees, less what the process
    /// already holds (the mapped model pages it touched, the runtime).
    /// </summary>
    public static long AvailableBytes() => Math.Max(0, KvSizing.AvailableBytes - Environment.WorkingSet);

    /// <summary>Fails when <paramref name="tokens"/> positions of KV cache (per session) do not fit in memory.</summary>
    /// <param name="what">The option and value that asked for them, e.g. "--context 100000000 with --cache static".</param>
    /// <param name="fullLocalLayers">Whether a model's local layers keep every position (--swa-full) rather than a ring of their window.</param>
    public static void CheckTokens(ModelConfig config, KvElementFormat format, long tokens, string what, long available, bool fullLocalLayers = false)
    {
        long perToken = format.BytesPerToken(config);
        long needed = KvSizing.SequenceBytes(config, format, tokens, fullLocalLayers);
        if (needed <= available) return;
        // The most tokens that fit (the bytes grow with the tokens, less steeply where local layers keep a ring).
        long fits = 0;
        for (long lo = 0, hi = int.MaxValue; lo <= hi;)
        {
            long mid = lo + (hi - lo) / 2;
            if (KvSizing.SequenceBytes(config, format, mid, fullLocalLayers) <= available) { fits = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        bool ring = KvSizing.KeepsLocalRing(config, format, fullLocalLayers);
        throw new ArgumentException(
            $"{what} needs {Size(needed)} of KV cache ({tokens:N0} tokens x {perToken:N0} bytes/token, {format.Name.ToLowerInvariant()}" +
            (ring ? ", less in the local layers, which keep a ring of their window" : "") + ") " +
            $"but {Size(available)} of memory is available: at most {fits:N0} tokens fit" +
            (format.Type == KvElementType.F32 ? $" (--kv-type q8_0 takes {KvSizing.BytesPerToken(config, KvElementType.Q8_0):N0} bytes/token)" : ""));
    }

    /// <summary>Fails when a KV budget of <paramref name="bytes"/> does not fit in memory.</summary>
    public static void CheckBudget(double bytes, string what, long available)
    {
        if (bytes <= available) return;
        throw new ArgumentException($"{what} needs {Size(bytes)} but {Size(available)} of memory is available: the largest budget that fits is {available >> 20:N0} MiB");
    }

    /// <summary>Bytes in binary units with three significant digits or so ("1.19 TiB", "640 KiB").</summary>
    public static string Size(double bytes)
    {
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        int u = 0;
        while (bytes >= 1024 && u < units.Length - 1)
        {
            bytes /= 1024;
            u++;
        }
        return u == 0 ? $"{bytes:N0} bytes" : $"{bytes:0.##} {units[u]}";
    }
}
