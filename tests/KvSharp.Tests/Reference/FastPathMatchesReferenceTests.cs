using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Gguf;
using KvSharp.Reference;
using KvSharp.Sampling;

namespace KvSharp.Tests.Reference;

/// <summary>
/// The fast forward pass (SIMD kernels, quantized activations, tiled attention) computes what the reference
/// computes, within <see cref="ReferenceOracle"/>'s tolerances: a batched prefill into a contiguous cache, token by
/// token into a static cache, and a prefill in pieces then decode through a paged cache, for every fixture model
/// and weight type, stories260K as GGUF and as a llama2.c checkpoint, and each rope variant the loader accepts.
/// </summary>
public class FastPathMatchesReferenceTests
{
    /// <summary>150 tokens: the fixture prompt, then tokens of a fixed seed; past four attention tiles of 32 positions.</summary>
    private static int[] Prompt(int vocab)
    {
        var rng = new Random(13);
        return [.. Fixtures.All[0].PromptIds, .. Enumerable.Range(0, 86).Select(_ => rng.Next(3, vocab))];
    }

    public static TheoryData<string, string> Models()
    {
        var data = Fixtures.Names();
        data.Add("stories260K.gguf", "F32");
        data.Add("stories260K.bin", "F32");
        return data;
    }

    private static LlmModel Load(string name, string type) => name switch
    {
        "stories260K.gguf" => LlmModel.Load(TestPaths.Model(name), new ModelLoadOptions { Threads = 2 }),
        "stories260K.bin" => LlmModel.Load(TestPaths.Model(name), new ModelLoadOptions { Threads = 2, TokenizerPath = TestPaths.Model("tok512.bin") }),
        _ => LlmModel.Load(Fixtures.Get(name, type).GgufPath, new ModelLoadOptions { Threads = 2 }),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryCacheGivesTheReferenceLogits(string name, string type)
    {
        using var model = Load(name, type);
        AssertEveryCacheMatches(model, type, $"{name}.{type}");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void GreedyDecodeFollowsTheReferenceUntilTheMarginIsTooSmall(string name, string type)
    {
        using var model = Load(name, type);
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds;
        var reference = new ReferenceModel(model.Config, model.Weights);
        var expected = ReferenceOracle.Logits(reference, prompt)[^vocab..];
        var cache = model.CreateCache(KvCacheMode.Static, 128);
        var actual = model.Evaluate(prompt, cache);
        float tolerance = ReferenceOracle.Tolerance(type).Max;
        for (int step = 0; step < 32 && ReferenceOracle.TopTwoMargin(expected) >= 2 * tolerance; step++)
        {
            int token = Sampler.ArgMax(expected);
            Assert.True(token == Sampler.ArgMax(actual), $"{name}.{type}: greedy step {step}: reference {token}, fast path {Sampler.ArgMax(actual)}");
            ReferenceOracle.AssertClose(expected, actual, vocab, type, $"{name}.{type} greedy step {step}");
            expected = reference.Forward(token);
            actual = model.Evaluate([token], cache);
        }
    }

    /// <summary>The rope variants of <see cref="Models.ModelConfig"/> that no fixture uses, on F32 weights so the tolerance is tight.</summary>
    public static TheoryData<string> RopeVariants() => new() { "frequency factors", "linear scaling", "partial rotation", "partial rotation neox" };

    [Theory]
    [MemberData(nameof(RopeVariants))]
    public void RopeVariantsGiveTheReferenceLogits(string variant)
    {
        // Factors rising from 1 to 8.5 over the 16 pairs (llama3 divides low frequencies, not high ones, but any factors
        // test the arithmetic); half the head dimensions rotated, in llama's adjacent pairs and in NeoX's halves.
        string path = variant switch
        {
            "frequency factors" => GgufRewrite.Rewrite("llama-gqa.F32.gguf",
                add: w => w.AddTensor("rope_freqs.weight", [16], Enumerable.Range(0, 16).Select(i => 1 + i / 2f).ToArray())),
            "linear scaling" => GgufRewrite.Rewrite("llama-gqa.F32.gguf",
                add: w => w.Add("llama.rope.scaling.type", "linear").Add("llama.rope.scaling.factor", 4f)),
            "partial rotation" => GgufRewrite.Rewrite("llama-gqa.F32.gguf", metadata: HalfRotated),
            _ => GgufRewrite.Rewrite("qwen2-bias.F32.gguf", metadata: HalfRotated),
        };
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            AssertEveryCacheMatches(model, "F32", variant);
        }
        finally { File.Delete(path); }
    }

    /// <summary>rope.dimension_count halved, in the value's own integer type.</summary>
    private static GgufValue HalfRotated(string key, GgufValue value) =>
        key.EndsWith(".rope.dimension_count") && value.TryGetInt64(out long dims)
            ? new GgufValue(value.Type, Convert.ChangeType(dims / 2, value.Value.GetType()))
            : value;

    internal static void AssertEveryCacheMatches(LlmModel model, string type, string what)
    {
        int vocab = model.Config.VocabSize;
        var prompt = Prompt(vocab);
        var expected = ReferenceOracle.Logits(new ReferenceModel(model.Config, model.Weights, 160), prompt);

        var batch = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 160), allLogits: true);
        ReferenceOracle.AssertClose(expected, batch, vocab, type, $"{what} prefill, contiguous cache");

        var cache = model.CreateCache(KvCacheMode.Static, 160);
        var sequential = new float[prompt.Length * vocab];
        for (int t = 0; t < prompt.Length; t++) model.Evaluate(prompt.AsSpan(t, 1), cache).CopyTo(sequential, t * vocab);
        ReferenceOracle.AssertClose(expected, sequential, vocab, type, $"{what} token by token, static cache");
        // Batch invariance: the prefill and the token-by-token decodes compute the same bits.
        Assert.Equal(batch, sequential);

        ReferenceOracle.AssertClose(expected, PagedPrefillThenDecode(model, prompt, 10, 160), vocab, type, $"{what} prefill then decode, paged cache");
    }

    /// <summary>
    /// Every position's logits through a paged cache of 16-token blocks: a first prefill of 37 tokens that ends inside a
    /// block, the rest one token at a time.
    /// </summary>
    internal static float[] PagedPrefillThenDecode(LlmModel model, int[] prompt, int blocks, int capacity)
    {
        int vocab = model.Config.VocabSize;
        using var pool = new KvBlockPool(model.Config, 16, blocks);
        var paged = new PagedKvSequence(pool, capacity);
        var forward = model.CreateForwardPass();
        var logits = new float[prompt.Length * vocab];
        forward.Forward(prompt.AsSpan(0, 37), paged, logits, allLogits: true);
        for (int t = 37; t < prompt.Length; t++)
            forward.Forward(prompt.AsSpan(t, 1), paged, logits.AsSpan(t * vocab, vocab), allLogits: false);
        return logits;
    }
}
