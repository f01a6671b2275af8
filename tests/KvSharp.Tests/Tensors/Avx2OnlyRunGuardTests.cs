using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// Run only inside <see cref="Platform.Avx2OnlyRunTests"/>' child run: proves that run really had .NET's AVX-512 off
/// (the switch's name changed between .NET versions; a wrong one would leave AVX-512 on and the rerun would prove nothing).
/// </summary>
public class Avx2OnlyRunGuardTests
{
    public const string ExpectVariable = "KVSHARP_EXPECT_NO_AVX512";

    [Fact]
    public void TheAvx2OnlyRunHasNoAvx512AndRunsEveryTypeOnAvx2()
    {
        if (Environment.GetEnvironmentVariable(ExpectVariable) != "1") Assert.Skip($"only in the AVX2-only rerun ({ExpectVariable}=1)");
        Assert.False(Avx512F.IsSupported, "AVX-512 is still on in the AVX2-only rerun");
        Assert.False(KernelPaths.IsAvailable(KernelPath.Avx512));
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.F32 })
            Assert.Contains(KernelPaths.For(type), new[] { KernelPath.Avx2, KernelPath.Avx2Vnni });
    }
}
