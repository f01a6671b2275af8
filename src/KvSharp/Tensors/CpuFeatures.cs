using System.Runtime.Intrinsics.X86;

namespace KvSharp.Tensors;

/// <summary>
/// What the CPU and .NET offer the kernels, for benchmark records: the CPU's model name and SIMD flags as Linux reports
/// them, and the .NET IsSupported flags (which can be fewer: .NET 10 exposes no 512-bit VNNI, and AVX-VNNI only where the
/// CPU has the VEX form).
/// </summary>
public static class CpuFeatures
{
    /// <summary>The CPU flags in /proc/cpuinfo that matter to the kernels.</summary>
    private static readonly string[] RelevantFlags = ["avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_int8"];

    /// <summary>The CPU's model name from /proc/cpuinfo, or null where there is none (not Linux).</summary>
    public static string? ModelName { get; } = CpuInfoField("model name");

    /// <summary>The kernel-relevant flags /proc/cpuinfo lists (empty where it cannot be read).</summary>
    public static IReadOnlyList<string> CpuFlags { get; } =
        (CpuInfoField("flags")?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? []).Intersect(RelevantFlags).ToArray();

    /// <summary>.NET's System.Runtime.Intrinsics.X86 IsSupported flags the kernels could use, by class name.</summary>
    public static IReadOnlyList<(string Name, bool Supported)> DotNet { get; } =
    [
        ("Avx2", Avx2.IsSupported), ("Fma", Fma.IsSupported), ("AvxVnni", AvxVnni.IsSupported),
        ("Avx512F", Avx512F.IsSupported), ("Avx512BW", Avx512BW.IsSupported), ("Avx512DQ", Avx512DQ.IsSupported),
        ("Avx512Vbmi", Avx512Vbmi.IsSupported), ("Avx10v1", Avx10v1.IsSupported), ("AvxVnniInt8", AvxVnniInt8.IsSupported),
    ];

    /// <summary>The .NET flags that are true, space-separated (e.g. "Avx2 Fma Avx512F Avx512BW").</summary>
    public static string DotNetSupported => string.Join(' ', DotNet.Where(f => f.Supported).Select(f => f.Name));

    private static string? CpuInfoField(string name)
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return null;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon > 0 && line[..colon].Trim() == name) return line[(colon + 1)..].Trim();
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
