using System.Text.Json;
using KvSharp.Tensors;

namespace KvSharp.Tests.Bench;

/// <summary>What every bench record must say about the hardware and kernels that made it.</summary>
internal static class KernelRecord
{
    /// <summary>
    /// The JSON names a kernel path for every weight type of the model (as KernelPaths describes it, with "paired
    /// groups" where the copies pair them) and the CPU's .NET flags; the table prints the same paths and the CPU line.
    /// </summary>
    public static void AssertNamed(JsonElement json, string table)
    {
        var paths = json.GetProperty("kernel_paths");
        Assert.NotEmpty(paths.EnumerateObject());
        foreach (var p in paths.EnumerateObject())
        {
            var type = Enum.Parse<GgmlType>(p.Name);
            Assert.Equal(KernelPaths.Describe(type) + (InterleavedRows.PairsGroupsByDefault(type) ? ", paired groups" : ""), p.Value.GetString());
            Assert.Contains($"{p.Name} {p.Value.GetString()}", table);
        }
        Assert.Equal(CpuFeatures.DotNetSupported, json.GetProperty("cpu").GetProperty("dotnet").GetString());
        Assert.Contains("kernels: ", table);
        Assert.Contains("CPU: ", table);
    }
}
