using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

public class SamplerTests
{
    private static float[] Logits(params float[] values) => values;

    private static int[] Draw(SamplingOptions o, float[] logits, int count)
    {
        var sampler = new Sampler(o, logits.Length);
        return Enumerable.Range(0, count).Select(_ => sampler.Sample((float[])logits.Clone(), [])).ToArray();
    }

    [Fact]
    public void VectorArgMaxAgreesWithTheScalarLoopOnTiesZerosInfinitiesAndNaNs()
    {
        // Values drawn from a small set so ties, +0/-0 pairs and NaNs land in every lane and in the tail.
        float[] pool = [0f, -0f, 1f, -1f, 2.5f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, 1e-40f];
        var rng = new Random(17);
        for (int trial = 0; trial < 20000; trial++)
        {
            var logits = new float[rng.Next(0, 70)];
            bool wide = trial % 2 == 0;
            for (int i = 0; i < logits.Length; i++) logits[i] = wide ? (float)(rng.NextDouble() * 8 - 4) : pool[rng.Next(pool.Length)];
            if (wide && logits.Length > 0 && rng.Next(3) == 0) logits[rng.Next(logits.Length)] = float.NaN;
            Assert.True(Sampler.ArgMaxScalar(logits) == Sampler.ArgMax(logits), $"trial {trial}: [{string.Join(", ", logits)}]");
        }
        // A vocabulary-sized row whose largest value sits in the scalar tail, and one with a NaN first.
        var row = Enumerable.Range(0, 32003).Select(i => (float)Math.Sin(i)).ToArray();
        row[32001] = 5f;
        Assert.Equal(32001, Sampler.ArgMax(row));
        row[0] = float.NaN;
        Assert.Equal(0, Sampler.ArgMax(row));
    }

    [Fact]
    public void GreedyTakesTheArgmaxAndTheLowestIdOnTies()
    {
        Assert.Equal(2, new Sampler(SamplingOptions.Greedy, 4).Sample(Logits(1, 3, 5, 2), []));
        Assert.Equal(1, new Sampler(SamplingOptions.Greedy, 4).Sample(Logits(1, 5, 5, 2), []));
    }

    [Fact]
    public void SameSeedSameDrawsDifferentSeedDifferentDraws()
    {
        var logits = Logits(1, 1.2f, 0.8f, 1.1f, 0.9f, 1.05f);
        var o = new SamplingOptions { Temperature = 1, Seed = 11 };
        Assert.Equal(Draw(o, logits, 50), Draw(o, logits, 50));
        Assert.NotEqual(Draw(o, logits, 50), Draw(o with { Seed = 12 }, logits, 50));
    }

    [Fact]
    public void TopKOneIsGreedyAndTopKLimitsTheCandidates()
    {
        var logits = Logits(0.1f, 2, 1.9f, 1.8f, -3, 0);
        Assert.All(Draw(new SamplingOptions { Temperature = 5, TopK = 1 }, logits, 30), t => Assert.Equal(1, t));
        Assert.All(Draw(new SamplingOptions { Temperature = 5, TopK = 3 }, logits, 200), t => Assert.Contains(t, new[] { 1, 2, 3 }));
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        // Probabilities at temperature 1 ~ [0.64, 0.24, 0.09, 0.03]: top-p 0.7 keeps the first two.
        var logits = Logits(3, 2, 1, 0);
        var draws = Draw(new SamplingOptions { Temperature = 1, TopP = 0.7f }, logits, 300);
        Assert.All(draws, t => Assert.Contains(t, new[] { 0, 1 }));
        Assert.Contains(1, draws);
    }

    [Fact]
    public void MinPDropsTokensFarBelowTheBest()
    {
        var logits = Logits(5, 4.9f, 0, 0, 0);
        Assert.All(Draw(new SamplingOptions { Temperature = 1, MinP = 0.5f }, logits, 200), t => Assert.Contains(t, new[] { 0, 1 }));
    }

    [Fact]
    public void RepetitionAndPresencePenaltiesPushRepeatedTokensDown()
    {
        var sampler = new Sampler(new SamplingOptions { RepetitionPenalty = 2f }, 3);
        Assert.Equal(1, sampler.Sample(Logits(3, 2, -1), [0, 0]));       // 3 / 2 = 1.5 < 2
        var presence = new Sampler(new SamplingOptions { PresencePenalty = 1.5f }, 3);
        Assert.Equal(1, presence.Sample(Logits(3, 2, -1), [0]));         // 3 - 1.5 < 2
        var l = Logits(3, 2, -1);
        new Sampler(new SamplingOptions { RepetitionPenalty = 2f }, 3).Sample(l, [2]);
        Assert.Equal(-2, l[2]);                                          // negative logits are multiplied
    }

    [Fact]
    public void FrequencyPenaltyGrowsWithEachOccurrence()
    {
        var sampler = new Sampler(new SamplingOptions { FrequencyPenalty = 0.6f }, 3);
        Assert.Equal(0, sampler.Sample(Logits(3, 2, -1), [0]));          // 3 - 0.6 = 2.4 > 2
        Assert.Equal(1, sampler.Sample(Logits(3, 2, -1), [0, 0]));       // 3 - 2 x 0.6 = 1.8 < 2
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f, 1f, "temperature")]
    [InlineData(0f, -1, 1f, 0f, 1f, "top-k")]
    [InlineData(0f, 0, 0f, 0f, 1f, "top-p")]
    [InlineData(0f, 0, 1f, 2f, 1f, "min-p")]
    [InlineData(0f, 0, 1f, 0f, 0f, "repetition penalty")]
    public void InvalidOptionsAreNamed(float t, int k, float p, float minP, float rep, string name)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => new Sampler(new SamplingOptions { Temperature = t, TopK = k, TopP = p, MinP = minP, RepetitionPenalty = rep }, 4));
        Assert.Contains(name, e.Message);
    }

    [Fact]
    public void SeededGenerationIsReproducibleEndToEnd()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var options = new GenerationOptions { MaxTokens = 40, Sampling = new SamplingOptions { Temperature = 0.8f, TopP = 0.95f, Seed = 5 } };
        string Run(GenerationOptions o)
        {
            using var s = model.CreateSession(new SessionOptions { ContextLength = 256 });
            return string.Concat(s.Generate("Once upon a time", o));
        }
        Assert.Equal(Run(options), Run(options));
        Assert.NotEqual(Run(options), Run(options with { Sampling = options.Sampling with { Seed = 6 } }));
    }

    [Fact]
    public void StopStringsEndGenerationAndAreNotReturned()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        using var s = model.CreateSession(new SessionOptions { ContextLength = 256 });
        string full = string.Concat(s.Generate("Zoo", new GenerationOptions { MaxTokens = 56 }));
        s.Reset();
        string stopped = string.Concat(s.Generate("Zoo", new GenerationOptions { MaxTokens = 56, StopStrings = ["Lily"] }));
        Assert.Equal(full[..full.IndexOf("Lily", StringComparison.Ordinal)], stopped);
        Assert.Equal(FinishReason.Stop, s.LastStats!.FinishReason);
    }
}
