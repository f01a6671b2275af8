using KvSharp.Cache;
using KvSharp.Gguf;

namespace KvSharp.Tests.Models;

/// <summary>
/// Rope frequency factors (llama3-style scaling, the rope_freqs tensor) and linear rope scaling are read and applied:
/// factors of 1 change nothing, factors of 2 equal linear scaling by 2 (theta / 2 and 0.5 x theta are the same float).
/// </summary>
public class RopeScalingTests
{
    /// <summary>Logits of a model file; <paramref name="rewritten"/> files (our temporary copies) are deleted after.</summary>
    private static float[] Logits(string path, bool rewritten = true)
    {
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            return model.Evaluate(Fixtures.All[0].PromptIds, model.CreateCache(KvCacheMode.Contiguous, 128), allLogits: true);
        }
        finally
        {
            // Only a copy this test wrote: a checkout under /tmp puts the shared fixtures under the temp path too.
            if (rewritten) File.Delete(path);
        }
    }

    private static string WithRopeFactors(float factor) => GgufRewrite.Rewrite("llama-gqa.F32.gguf",
        add: w => w.AddTensor("rope_freqs.weight", [16], Enumerable.Repeat(factor, 16).ToArray()));

    [Fact]
    public void UnitFactorsChangeNothing() =>
        Assert.Equal(Logits(TestPaths.Fixture("llama-gqa.F32.gguf"), rewritten: false), Logits(WithRopeFactors(1f)));

    [Fact]
    public void FactorsOfTwoEqualLinearScalingByTwo()
    {
        var factors = Logits(WithRopeFactors(2f));
        var linear = Logits(GgufRewrite.Rewrite("llama-gqa.F32.gguf", add: w => w
            .Add("llama.rope.scaling.type", "linear")
            .Add("llama.rope.scaling.factor", 2f)));
        Assert.Equal(linear, factors);
        Assert.NotEqual(Logits(TestPaths.Fixture("llama-gqa.F32.gguf"), rewritten: false), factors);
    }

    [Fact]
    public void UnsupportedScalingIsNamed()
    {
        string path = GgufRewrite.Rewrite("llama-gqa.F32.gguf", add: w => w.Add("llama.rope.scaling.type", "dynamic"));
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => LlmModel.Load(path).Dispose());
            Assert.Contains("rope scaling type 'dynamic' is not supported", e.Message);
            Assert.Contains("supported: none, linear, yarn", e.Message);
        }
        finally { File.Delete(path); }
    }
}
