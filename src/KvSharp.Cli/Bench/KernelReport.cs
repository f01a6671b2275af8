using System.Text.Json.Nodes;
using KvSharp.Tensors;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Which kernel path each weight type of the model ran on and what the CPU and .NET offer, for the speed table and its
/// JSON, so that every recorded figure says what hardware and which kernels made it.
/// </summary>
public static class KernelReport
{
    /// <summary>Weight type → path name (<see cref="KernelPaths.Name"/>), for the model's distinct matrix types.</summary>
    public static JsonObject Paths(LlmModel model)
    {
        var paths = new JsonObject();
        foreach (var type in WeightTypes(model)) paths[type.ToString()] = Describe(model, type);
        return paths;
    }

    /// <summary>The CPU's model name, its kernel-relevant flags and the .NET IsSupported flags that are true.</summary>
    public static JsonObject Cpu() => new()
    {
        ["model"] = CpuFeatures.ModelName,
        ["flags"] = string.Join(' ', CpuFeatures.CpuFlags),
        ["dotnet"] = CpuFeatures.DotNetSupported,
        ["isa_override"] = Environment.GetEnvironmentVariable(KernelPaths.IsaVariable),
    };

    /// <summary>Two table lines: the kernels per weight type, then the CPU.</summary>
    public static void Write(TextWriter table, LlmModel model)
    {
        string? cap = Environment.GetEnvironmentVariable(KernelPaths.IsaVariable);
        table.WriteLine($"kernels: {string.Join(", ", WeightTypes(model).Select(t => $"{t} {Describe(model, t)}"))}" +
                        (string.IsNullOrWhiteSpace(cap) ? " (fastest per type; KVSHARP_ISA unset)" : $" (KVSHARP_ISA={cap})"));
        table.WriteLine($"CPU: {CpuFeatures.ModelName ?? "unknown"}; flags: {string.Join(' ', CpuFeatures.CpuFlags)}; .NET: {CpuFeatures.DotNetSupported}");
    }

    /// <summary>The type's paths (<see cref="KernelPaths.Describe"/>), and "paired groups" where its copies pair them (<see cref="InterleavedRows.PairedGroups"/>).</summary>
    public static string Describe(LlmModel model, GgmlType type)
        => KernelPaths.Describe(type) + (model.Weights.ProductMatrices().Any(m => m.Type == type && m.Interleaved is { PairedGroups: true }) ? ", paired groups" : "");

    private static IEnumerable<GgmlType> WeightTypes(LlmModel model) => model.Weights.ProductMatrices().Select(m => m.Type).Distinct();
}
