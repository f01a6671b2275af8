using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>
/// Re-rotating keys that RoPE already rotated (a context shift moves them): from p to q gives what rotating the
/// unrotated row at q gives, and p to q to p gives the row back, to within a few float roundings, for both pairings,
/// partial rotation, linear scaling and per-pair frequency factors, far into the context.
/// </summary>
public class RerotationTests
{
    /// <summary>
    /// The stated tolerance, relative to the row's largest element: the stored row and the direct rotation are each
    /// rounded to float once per element and the re-rotation once more (in double before that), so the two differ by a
    /// few float ulps (2^-23 ≈ 1.2e-7) of the row's size. Measured over these cases: p to q against rotating at q
    /// 1.23e-7, there and back 8.8e-8; allowed: two ulps.
    /// </summary>
    private const double Tolerance = 2.4e-7;

    public static TheoryData<string> Shapes() => ["normal", "neox", "normal-partial", "neox-partial", "scaled-factors"];

    private static RotaryEmbedding Rope(string shape, out int headDim)
    {
        headDim = 64;
        bool neox = shape.StartsWith("neox");
        var config = new ModelConfig
        {
            Architecture = neox ? "qwen2" : "llama",
            EmbeddingDim = 128, LayerCount = 1, HeadCount = 2, KvHeadCount = 2, HeadDim = headDim, FeedForwardDim = 128,
            VocabSize = 16, TrainedContextLength = 8192, RmsNormEps = 1e-5f,
            RopeTheta = neox ? 1_000_000f : 10_000f,
            RopeStyle = neox ? RopeStyle.NeoX : RopeStyle.Normal,
            RopeDimensions = shape.EndsWith("partial") ? 40 : headDim,
            RopeFrequencyScale = shape == "scaled-factors" ? 0.25f : 1f,
        };
        var rng = new Random(7);
        float[]? factors = shape == "scaled-factors"
            ? Enumerable.Range(0, config.RopeDimensions / 2).Select(_ => 1f + 7f * rng.NextSingle()).ToArray()
            : null;
        return new RotaryEmbedding(config, factors);
    }

    private static float[] RandomHeads(int seed, int headDim)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, 2 * headDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
    }

    private static void RotateAt(RotaryEmbedding rope, float[] heads, int headDim, int position)
    {
        var cos = new float[rope.Dims / 2];
        var sin = new float[rope.Dims / 2];
        rope.Angles(position, cos, sin);
        rope.Apply(heads, headDim, cos, sin);
    }

    private static double RelativeError(float[] expected, float[] actual) =>
        expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max() / expected.Max(x => Math.Abs((double)x));

    public static TheoryData<string, int, int> Moves()
    {
        var data = new TheoryData<string, int, int>();
        foreach (string shape in Shapes())
            foreach (var (p, q) in new[] { (5, 0), (64, 1), (100, 37), (4000, 10), (37, 4000), (8191, 4096), (131_071, 65_536) })
                data.Add(shape, p, q);
        return data;
    }

    [Theory]
    [MemberData(nameof(Moves))]
    public void RerotatingFromPToQEqualsRotatingTheRowAtQ(string shape, int p, int q)
    {
        var rope = Rope(shape, out int hd);
        var x = RandomHeads(p ^ q, hd);
        var shifted = (float[])x.Clone();
        RotateAt(rope, shifted, hd, p);
        rope.Rerotate(shifted, hd, p, q);
        var direct = (float[])x.Clone();
        RotateAt(rope, direct, hd, q);
        Assert.InRange(RelativeError(direct, shifted), 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Moves))]
    public void RerotatingThereAndBackReturnsTheRow(string shape, int p, int q)
    {
        var rope = Rope(shape, out int hd);
        var x = RandomHeads(p + q, hd);
        RotateAt(rope, x, hd, p);
        var y = (float[])x.Clone();
        rope.Rerotate(y, hd, p, q);
        rope.Rerotate(y, hd, q, p);
        Assert.InRange(RelativeError(x, y), 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ReRotatingToTheSamePositionAndTheUnrotatedDimensionsChangeNoBit(string shape)
    {
        var rope = Rope(shape, out int hd);
        var x = RandomHeads(3, hd);
        var same = (float[])x.Clone();
        rope.Rerotate(same, hd, 1234, 1234);
        Assert.Equal(x, same);

        var moved = (float[])x.Clone();
        rope.Rerotate(moved, hd, 1234, 17);
        for (int h = 0; h < 2; h++)
            Assert.Equal(x.AsSpan(h * hd + rope.Dims, hd - rope.Dims).ToArray(), moved.AsSpan(h * hd + rope.Dims, hd - rope.Dims).ToArray());
        Assert.NotEqual(x, moved);
    }

    [Fact]
    public void ShortAngleBuffersAndRowsThatAreNotWholeHeadsAreRefused()
    {
        var rope = Rope("normal", out int hd);
        Assert.Throws<ArgumentException>(() => rope.RerotationAngles(1, 0, new double[hd / 2 - 1], new double[hd / 2]));
        Assert.Throws<ArgumentException>(() => rope.Rerotate(new float[hd + 1], hd, 1, 0));
    }
}
