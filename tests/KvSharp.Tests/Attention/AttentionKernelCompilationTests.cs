using System.Reflection;
using KvSharp.Attention;

namespace KvSharp.Tests.Attention;

/// <summary>
/// The attention kernels with the inner key loops stay out of their callers (KeyScores.Tile, AttendTile, AttendTileAs):
/// inlined there under tiered PGO, the Tier1 code of F16 rows lost their own helpers' inlining (SumEight, the Half loads,
/// LoadValues16 as calls in the key loop) and ran slower with the same bits, which no result test notices.
/// </summary>
public class AttentionKernelCompilationTests
{
    [Theory]
    [InlineData(typeof(CausalAttention), "AccumulateValues")]
    [InlineData(typeof(CausalAttention), "AccumulatePair")]
    [InlineData(typeof(KeyScores), "ScoreEight")]
    public void KeyLoopKernelsAreNeverInlined(Type type, string name)
    {
        MethodInfo? kernel = type.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static);
        Assert.NotNull(kernel);
        Assert.True(kernel.MethodImplementationFlags.HasFlag(MethodImplAttributes.NoInlining),
            $"{type.Name}.{name} must be [MethodImpl(MethodImplOptions.NoInlining)]");
    }
}
