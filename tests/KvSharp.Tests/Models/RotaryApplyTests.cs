using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>
/// <see cref="RotaryEmbedding.Apply"/> rotates eight elements at a time where it can; every element must still have the
/// bits of the pair formula written out one element at a time (each product rounded, then one add or subtract), which
/// is what llama.cpp computes: both pairings, full and partial rotation (tails shorter than a vector), several heads.
/// </summary>
public class RotaryApplyTests
{
    public static TheoryData<bool, int, int> Shapes() => new()
    {
        { false, 64, 64 }, { true, 64, 64 }, { false, 64, 40 }, { true, 64, 40 }, { false, 128, 128 }, { true, 80, 78 }, { false, 32, 6 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void VectorRotationHasTheBitsOfThePairFormula(bool neox, int headDim, int ropeDims)
    {
        var rope = new RotaryEmbedding(new ModelConfig
        {
            Architecture = neox ? "qwen2" : "llama",
            EmbeddingDim = 3 * headDim, LayerCount = 1, HeadCount = 3, KvHeadCount = 3, HeadDim = headDim, FeedForwardDim = 64,
            VocabSize = 16, TrainedContextLength = 4096, RmsNormEps = 1e-5f, RopeTheta = 10_000f,
            RopeStyle = neox ? RopeStyle.NeoX : RopeStyle.Normal, RopeDimensions = ropeDims, RopeFrequencyScale = 1f,
        }, null);
        var rng = new Random(headDim + ropeDims);
        foreach (int position in new[] { 0, 1, 17, 1000, 4095 })
        {
            var cos = new float[ropeDims / 2];
            var sin = new float[ropeDims / 2];
            rope.Angles(position, cos, sin);
            float[] heads = [.. Enumerable.Range(0, 3 * headDim).Select(_ => (float)(rng.NextDouble() * 8 - 4))];
            var expected = (float[])heads.Clone();
            for (int h = 0; h < 3; h++)
                for (int i = 0; i < ropeDims / 2; i++)
                {
                    int a = h * headDim + (neox ? i : 2 * i), b = neox ? a + ropeDims / 2 : a + 1;
                    float x0 = heads[a], x1 = heads[b];
                    expected[a] = x0 * cos[i] - x1 * sin[i];
                    expected[b] = x0 * sin[i] + x1 * cos[i];
                }
            rope.Apply(heads, headDim, cos, sin);
            for (int i = 0; i < heads.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(heads[i]),
                    $"position {position}, element {i}: {heads[i]:R}, expected {expected[i]:R}");
        }
    }
}
