using System.Reflection;
using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Tests.Platform;

/// <summary>
/// Generic kernels whose callers are small (a one-line wrapper, a tile loop) stay out of them. Inlined there under tiered
/// PGO, the caller ran out of inlining budget and left the kernel's own helpers as calls, accumulators on the stack: the
/// same bits, which no result test notices, but about 1.4x slower (the AVX2 Q8_0 group kernels behind Q8_0x4 / Q8_0x8 and
/// their VNNI twins, see VecDotAvx2Interleaved.SignedX4; the one-token Q4_0 kernel behind Q4_0x1 2.3x when a one-line wrapper took it
/// in, see its remarks) or 1.2-1.5x (F16-KV attention's key loops behind
/// KeyScores.Tile, AttendTile and AttendTileAs).
/// </summary>
public class KernelInliningTests
{
    [Theory]
    [InlineData(typeof(VecDotAvx2Interleaved), "SignedX4")]
    [InlineData(typeof(VecDotAvx2Interleaved), "SignedX8")]
    [InlineData(typeof(VecDotAvx2Interleaved), "SignedX1")]
    [InlineData(typeof(VecDotAvx2Interleaved), "NibblesX1")]
    [InlineData(typeof(VecDotAvx2Interleaved), "NibblesX4")]
    [InlineData(typeof(VecDotAvx2Interleaved), "NibblesX8")]
    [InlineData(typeof(CausalAttention), "AccumulateValues")]
    [InlineData(typeof(CausalAttention), "AccumulatePair")]
    [InlineData(typeof(KeyScores), "ScoreEight")]
    public void KernelsBehindSmallCallersAreNeverInlined(Type type, string name)
    {
        MethodInfo? kernel = type.GetMethod(name, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static);
        Assert.NotNull(kernel);
        Assert.True(kernel.MethodImplementationFlags.HasFlag(MethodImplAttributes.NoInlining),
            $"{type.Name}.{name} must be [MethodImpl(MethodImplOptions.NoInlining)]");
    }
}
