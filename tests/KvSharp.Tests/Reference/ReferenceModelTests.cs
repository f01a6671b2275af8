using KvSharp.Reference;

namespace KvSharp.Tests.Reference;

/// <summary>The oracle's own contract: cases small enough to work out by hand, its cache, and its errors.</summary>
public class ReferenceModelTests
{
    [Fact]
    public void AttentionToOnePositionReturnsItsValue()
    {
        float[] q = [1, -2, 0.5f, 3], k = [4, 1, -1, 2], v = [0.25f, -7, 3, 1e3f];
        var output = new float[4];
        ReferenceAttention.Attend(q, k, v, 1, 0.5, output);
        Assert.Equal(v, output);
    }

    [Fact]
    public void AttentionWeighsPositionsByTheSoftmaxOfTheirScores()
    {
        // Scores 0 and ln 3 (scale 1): weights 1/4 and 3/4. A third row past the length must not count.
        float[] q = [1, 0], k = [0, 5, MathF.Log(3), 5, 100, 0], v = [8, 0, 0, 4, -1000, -1000];
        var output = new float[2];
        ReferenceAttention.Attend(q, k, v, 2, 1, output);
        Assert.Equal(2f, output[0], 1e-6f);
        Assert.Equal(3f, output[1], 1e-6f);
    }

    [Fact]
    public void ResetStartsTheSameSequenceAgain()
    {
        using var model = LlmModel.Load(Fixtures.Get("llama-gqa", "Q4_0").GgufPath, new ModelLoadOptions { Threads = 1 });
        var reference = new ReferenceModel(model.Config, model.Weights);
        var prompt = Fixtures.All[0].PromptIds[..12];
        var first = ReferenceOracle.Logits(reference, prompt);
        Assert.Equal(12, reference.Position);
        reference.Forward(7); // leave a different row behind at position 12
        Assert.Equal(first, ReferenceOracle.Logits(reference, prompt));
        // Position matters: the same token at another position gives other logits.
        Assert.NotEqual(first[..model.Config.VocabSize], first[^model.Config.VocabSize..]);
    }

    [Fact]
    public void ErrorsNameTheProblem()
    {
        using var model = LlmModel.Load(Fixtures.Get("llama-tied", "F32").GgufPath, new ModelLoadOptions { Threads = 1 });
        var reference = new ReferenceModel(model.Config, model.Weights, contextLength: 2);
        Assert.Contains("outside the vocabulary [0, 512)", Assert.Throws<ArgumentOutOfRangeException>(() => reference.Forward(512)).Message);
        reference.Forward(1);
        reference.Forward(2);
        Assert.Contains("cache is full (2 positions)", Assert.Throws<InvalidOperationException>(() => reference.Forward(3)).Message);
        reference.Reset();
        Assert.Equal(model.Config.VocabSize, reference.Forward(3).Length);
    }
}
