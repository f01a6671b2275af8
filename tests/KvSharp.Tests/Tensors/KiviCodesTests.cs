using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tensors;

/// <summary>Every width KIVI codes are widened at (16, 8 and 1 channels at a time) gives the same floats, bit for bit.</summary>
public class KiviCodesTests
{
    public static TheoryData<int, int, int> Rows()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int bits in new[] { 4, 2 })
            foreach (var (from, to) in new[] { (0, 64), (0, 72), (8, 47), (32, 33), (16, 128) })
                data.Add(bits, from, to);
        return data;
    }

    /// <summary>The widths this CPU can run: 16 needs AVX-512, 8 AVX2, 1 runs everywhere.</summary>
    private static int[] Widths(int bits) => [.. new[] { 16, 8, 1 }.Where(w => w <= KiviCodes.Widest(bits))];

    [Theory]
    [MemberData(nameof(Rows))]
    public void EveryWidthGivesTheSameFloats(int bits, int from, int to)
    {
        var rng = new Random(bits * 1000 + from * 10 + to);
        var codes = new byte[128 * bits / 8 + 8];
        rng.NextBytes(codes);
        // Parameters as the quantizer leaves them (binary16 widened), with signs, subnormal-sized and large ones.
        float[] scales = [.. Enumerable.Range(0, 128).Select(i => (float)(Half)((rng.NextDouble() - 0.3) * Math.Pow(10, rng.Next(-6, 4))))];
        float[] mins = [.. Enumerable.Range(0, 128).Select(i => (float)(Half)((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-6, 4))))];
        float shared = scales[5], sharedMin = mins[9];

        float[]? channels = null, one = null;
        foreach (int width in Widths(bits))
        {
            var perChannel = new float[128];
            KiviCodes.Dequantize(ref codes[0], from, to, bits, ref scales[0], ref mins[0], ref perChannel[0], width);
            var perRow = new float[128];
            KiviCodes.Dequantize(ref codes[0], from, to, bits, shared, sharedMin, ref perRow[0], width);
            // Written where asked and nowhere else.
            Assert.All(perChannel[..from].Concat(perChannel[to..]), x => Assert.Equal(0f, x));
            channels ??= perChannel;
            one ??= perRow;
            Assert.Equal(channels, perChannel);
            Assert.Equal(one, perRow);
        }
        // And each float is code x scale + min, rounded after the product and after the sum.
        for (int c = from; c < to; c++)
        {
            int code = KiviQuantizer.Unpack(ref codes[0], c, bits);
            Assert.Equal(code * scales[c] + mins[c], channels![c]);
            Assert.Equal(code * shared + sharedMin, one![c]);
        }
    }

    [Fact]
    public void TheWidestWidthFollowsTheCpu()
    {
        Assert.Equal(!Avx2.IsSupported ? 1 : Avx512F.IsSupported ? 16 : 8, KiviCodes.Widest(4));
        Assert.Equal(1, KiviCodes.Widest(3));
    }
}
