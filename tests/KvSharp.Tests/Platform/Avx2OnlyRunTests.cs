using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tests.Tensors;

namespace KvSharp.Tests.Platform;

/// <summary>
/// The machines this project runs on include AVX2-only CPUs (Zen 3), where .NET compiles every vector operation with
/// VEX encodings and 16 registers, not the EVEX forms and 32 registers it uses where AVX-512 exists. On a machine with
/// AVX-512 the suite reruns the kernel, attention and llama.cpp-parity tests in a child process with .NET's AVX-512
/// switched off (DOTNET_EnableAVX512=0), so the code an AVX2-only CPU runs is tested on every machine, not only on one.
/// </summary>
public class Avx2OnlyRunTests
{
    private static readonly string[] Namespaces = ["KvSharp.Tests.Tensors", "KvSharp.Tests.Attention", "KvSharp.Tests.Models"];

    [Fact]
    public async Task KernelAttentionAndParityTestsPassWithDotNetsAvx512Off()
    {
        if (!Avx512F.IsSupported) Assert.Skip("no AVX-512 on this machine: the suite itself ran the AVX2-only code");
        string assembly = typeof(Avx2OnlyRunTests).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        start.ArgumentList.Add(assembly);
        foreach (string ns in Namespaces)
        {
            start.ArgumentList.Add("-namespace");
            start.ArgumentList.Add(ns);
        }
        foreach (string option in new[] { "-noLogo", "-noColor" }) start.ArgumentList.Add(option);
        start.Environment["DOTNET_EnableAVX512"] = "0";
        start.Environment[Avx2OnlyRunGuardTests.ExpectVariable] = "1";
        start.Environment.Remove("KVSHARP_ISA"); // the default choice, as an AVX2-only CPU makes it
        start.Environment.Remove("KVSHARP_VNNI");

        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var errors = child.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        try { await child.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw;
        }
        string text = await output + await errors;
        string tail = text.Length > 4000 ? text[^4000..] : text;
        Assert.True(child.ExitCode == 0, $"the AVX2-only rerun failed (exit {child.ExitCode}):\n{tail}");
        Assert.Matches(@"Total: [1-9]\d*, Errors: 0, Failed: 0", text);
        // The guard ran (and passed) rather than being skipped: AVX-512 really was off.
        Assert.DoesNotContain(nameof(Avx2OnlyRunGuardTests.TheAvx2OnlyRunHasNoAvx512AndRunsEveryTypeOnAvx2) + " [SKIP]", text);
    }
}
