using System.Reflection;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>
/// The generic AVX2 Q8_0 multi-token kernels stay out of their one-line wrappers (Q8_0x4, Q8_0x8 and the VNNI twins):
/// inlined there under tiered PGO they lost their own helpers' inlining and ran about 1.4x slower with the same bits,
/// which no result test notices (see VecDotAvx2Interleaved.Q8_0x4Using).
/// </summary>
public class GroupKernelCompilationTests
{
    [Theory]
    [InlineData("Q8_0x4Using")]
    [InlineData("Q8_0x8Using")]
    public void GenericQ8_0GroupKernelsAreNeverInlined(string name)
    {
        MethodInfo? kernel = typeof(VecDotAvx2Interleaved).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static);
        Assert.NotNull(kernel);
        Assert.True(kernel.MethodImplementationFlags.HasFlag(MethodImplAttributes.NoInlining),
            $"VecDotAvx2Interleaved.{name} must be [MethodImpl(MethodImplOptions.NoInlining)]");
    }
}
