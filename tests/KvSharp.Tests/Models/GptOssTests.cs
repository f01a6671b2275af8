using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Sampling;
using KvSharp.Tests.Reference;
using static KvSharp.Tests.Models.ArchitectureVariants;

namespace KvSharp.Tests.Models;

/// <summary>
/// gpt-oss (<see cref="GptOssVariants"/>): the config as the file says it, the fast path against the reference model on
/// every cache kind, and both against an independent port of OpenAI's reference.
/// </summary>
public class GptOssTests
{
    [Fact]
    public void TheConfigIsReadAsTheFileSaysIt()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(GptOssF32), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        Assert.Equal(("gpt-oss", RopeStyle.NeoX, true, true, ExpertGating.SoftmaxOfChosen, FeedForwardActivation.SwiGluClamped),
            (c.Architecture, c.RopeStyle, c.HasLearnedSinks, c.HasExpertBiases, c.ExpertGating, c.Activation));
        Assert.Equal((4, 2, 768), (c.ExpertCount, c.ExpertsUsed, c.ExpertFeedForwardDim));
        // The even layers attend through the window, the odd ones to everything.
        Assert.Equal([GptOssVariants.Window, 0], Enumerable.Range(0, c.LayerCount).Select(c.LayerWindow));
        var layer = model.Weights.Layers[1];
        Assert.Equal(c.HeadCount, layer.SinkLogits!.Length);
        Assert.NotNull(layer.OutputBias);
        Assert.NotNull(layer.QueryBias);
        var moe = layer.Experts!;
        Assert.Equal((4, 768, 256), (moe.RouterBias!.Length, moe.Biases!.Gate[3].Length, moe.Biases.Down[3].Length));
    }

    [Fact]
    public void TheReferenceRunsItAsTheFastPathDoes()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(GptOssF32), new ModelLoadOptions { Threads = 2, ContextLength = 512 });
        FastPathMatchesReferenceTests.AssertEveryCacheMatches(model, "F32", GptOssF32.Name);
    }

    private static readonly string GoldenDir = System.IO.Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Models", "Architectures");

    /// <summary>
    /// The logits of the fixtures' 64-token prompt (every eighth position and the last) and 32 greedy ids against those
    /// the independent float64 port of OpenAI's reference computed for the very same file (its SHA-256 is checked), with
    /// the F32 tolerances the fixtures hold llama.cpp to (max 1e-4, mean 1e-5; max 3e-4 with YaRN's float angles).
    /// Ignoring the sinks, the window, a clamp, a bias or the gating each fails this.
    /// </summary>
    [Theory]
    [InlineData("gpt-oss.F32", 1e-4f)]
    // The MXFP4 golden quantizes the experts' inputs to Q8_0 as ggml does (and KvSharp does): what is left is float rounding.
    [InlineData("gpt-oss.MXFP4", 1e-4f)]
    // YaRN as the released files have it, with ggml's rounding of its correction range (the reference's default; OpenAI's
    // unrounded range moves these logits by up to 4). Its angles are floats here, as ggml's: 1.0e-4 at most was measured.
    [InlineData("gpt-oss-yarn.MXFP4", 3e-4f)]
    public void MatchesOpenAisReferenceModel(string variant, float maxTol)
    {
        var v = All.Single(x => x.Name == variant);
        string path = ArchitectureVariants.Path(v);
        string[] lines = File.ReadAllLines(System.IO.Path.Combine(GoldenDir, variant + ".txt"));
        string Field(string key) => lines.Single(l => l.StartsWith(key + ":")).Split(':', 2)[1].Trim();
        int[] Ints(string key) => Field(key).Split(' ').Select(int.Parse).ToArray();
        Assert.Equal(Field("sha256"), Sha256(path));
        var bytes = File.ReadAllBytes(System.IO.Path.Combine(GoldenDir, variant + ".f32"));
        var expected = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, expected, 0, bytes.Length);
        int[] positions = Ints("positions"), greedy = Ints("greedy");

        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2, ContextLength = 512 });
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds;
        var cache = model.CreateCache(KvCacheMode.Contiguous, 512);
        var batch = model.Evaluate(prompt, cache, allLogits: true);
        const float meanTol = 1e-5f; // the fixtures' F32 mean tolerance
        LlamaCppParityTests.Compare(expected, positions.SelectMany(p => batch.AsSpan(p * vocab, vocab).ToArray()).ToArray(), vocab, maxTol, meanTol,
            $"{variant} vs OpenAI's reference");

        var logits = batch[^vocab..];
        for (int step = 0; step < greedy.Length; step++)
        {
            int token = Sampler.ArgMax(logits);
            if (ReferenceOracle.TopTwoMargin(logits) < 2 * maxTol) break;
            Assert.True(greedy[step] == token, $"{variant}: greedy step {step}: reference {greedy[step]}, ours {token}");
            logits = model.Evaluate([token], cache);
        }
    }

    /// <summary>
    /// A file that names only the experts' width (no feed_forward_length: gpt-oss has no dense layer, and llama.cpp reads
    /// the key as optional) loads and computes what the file with both does.
    /// </summary>
    [Fact]
    public void AFileWithOnlyTheExpertsWidthLoads()
    {
        using var g = GgufFile.Open(ArchitectureVariants.Path(GptOssF32));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key is not ("general.alignment" or "gpt-oss.feed_forward_length")) w.Add(key, g.Metadata[key]);
        foreach (var t in g.Tensors) w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray());
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-gptoss-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        try
        {
            using var both = LlmModel.Load(ArchitectureVariants.Path(GptOssF32), new ModelLoadOptions { Threads = 2 });
            using var expertsOnly = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            Assert.Equal(768, expertsOnly.Config.FeedForwardDim);
            var prompt = Fixtures.All[0].PromptIds[..16];
            Assert.Equal(both.Evaluate(prompt, both.CreateCache(KvCacheMode.Contiguous, 32)), expertsOnly.Evaluate(prompt, expertsOnly.CreateCache(KvCacheMode.Contiguous, 32)));
        }
        finally { File.Delete(path); }
    }

    /// <summary>A file whose gpt-oss parts are missing or cannot be run as written is refused, naming what was wrong.</summary>
    [Theory]
    [InlineData("no sinks", "tensor 'blk.1.attn_sinks.weight' is missing")]
    [InlineData("sinks of 7", "tensor 'blk.0.attn_sinks.weight' has shape [7], expected [8]")]
    [InlineData("no window", "'gpt-oss.attention.sliding_window' is missing")]
    [InlineData("pattern array", "'gpt-oss.attention.sliding_window_pattern' has type")]
    [InlineData("local rope base", "'gpt-oss.rope.freq_base_swa' = 5000 differs from the rope base")]
    [InlineData("no up bias", "tensor 'blk.0.ffn_up_exps.bias' is missing")]
    [InlineData("down bias shape", "tensor 'blk.0.ffn_down_exps.bias' has shape [256, 3], expected [256, 4]")]
    [InlineData("non-finite bias", "tensor 'blk.1.ffn_gate_exps.bias' contains a non-finite value (row 2)")]
    [InlineData("no router bias", "tensor 'blk.0.ffn_gate_inp.bias' is missing")]
    public void AFileThatCannotBeReadRightIsRefusedByName(string damage, string message)
    {
        using var g = GgufFile.Open(ArchitectureVariants.Path(GptOssF32));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key != "general.alignment" && !(damage == "no window" && key == "gpt-oss.attention.sliding_window"))
                w.Add(key, g.Metadata[key]);
        if (damage == "pattern array") w.Add("gpt-oss.attention.sliding_window_pattern", GgufValue.Of([1, 0]));
        if (damage == "local rope base") w.Add("gpt-oss.rope.freq_base_swa", 5000f);
        foreach (var t in g.Tensors)
        {
            var data = g.GetTensorBytes(t).ToArray();
            if (damage == "no sinks" && t.Name == "blk.1.attn_sinks.weight" || damage == "no up bias" && t.Name == "blk.0.ffn_up_exps.bias"
                || damage == "no router bias" && t.Name == "blk.0.ffn_gate_inp.bias")
                continue;
            if (damage == "sinks of 7" && t.Name == "blk.0.attn_sinks.weight") w.AddTensor(t.Name, t.Type, [7], data[..28]);
            else if (damage == "down bias shape" && t.Name == "blk.0.ffn_down_exps.bias") w.AddTensor(t.Name, t.Type, [256, 3], data[..(256 * 3 * 4)]);
            else
            {
                if (damage == "non-finite bias" && t.Name == "blk.1.ffn_gate_exps.bias") BitConverter.TryWriteBytes(data.AsSpan((2 * 768 + 5) * 4), float.NaN);
                w.AddTensor(t.Name, t.Type, t.Dimensions, data);
            }
        }
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => LlmModel.Load(path).Dispose());
            Assert.True(e is ModelFormatException or GgufFormatException, $"{e.GetType().Name}: {e.Message}");
            Assert.Contains(message, e.Message);
        }
        finally { File.Delete(path); }
    }

    /// <summary>
    /// The keys and values stored in a quantized cache (contiguous, the windowed layer as a ring, and paged): the sinks
    /// and the window apply to them as to floats, and each prompt position's choice mostly survives.
    /// </summary>
    [Theory]
    [InlineData(KvElementType.F16, 0.95)]
    [InlineData(KvElementType.Q8_0, 0.9)]
    [InlineData(KvElementType.Q4_0, 0.6)]
    public void AQuantizedCacheKeepsMostOfTheChoices(KvElementType type, double agreement)
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(GptOssMxfp4), new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds;
        var exact = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256), allLogits: true);
        var stored = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 256, type), allLogits: true);
        Assert.All(stored, x => Assert.True(float.IsFinite(x)));
        int same = Enumerable.Range(0, prompt.Length).Count(t => Sampler.ArgMax(exact.AsSpan(t * vocab, vocab)) == Sampler.ArgMax(stored.AsSpan(t * vocab, vocab)));
        Assert.True(same >= agreement * prompt.Length, $"{type}: {same} of {prompt.Length} positions keep their choice");
        if (type != KvElementType.F16) Assert.NotEqual(exact, stored);

        // A paged pool of the same type gives the contiguous cache's bits.
        using var pool = new KvSharp.Cache.Paged.KvBlockPool(model.Config, 16, 16, KvElementFormat.Of(type));
        var paged = new KvSharp.Cache.Paged.PagedKvSequence(pool, 256);
        var logits = new float[prompt.Length * vocab];
        model.CreateForwardPass().Forward(prompt, paged, logits, allLogits: true);
        Assert.Equal(stored, logits);
    }

    /// <summary>
    /// A session saved past its windowed layer's ring (400 positions against a ring of 320) and loaded into a fresh one
    /// continues with the bits the original gives.
    /// </summary>
    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.Q8_0)]
    public void ASavedSessionContinuesBitIdentically(KvElementType type)
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(GptOssMxfp4), new ModelLoadOptions { Threads = 2 });
        var options = new SessionOptions { ContextLength = 512, KvElementType = type };
        int[] prompt = [.. Enumerable.Range(0, 400).Select(i => Fixtures.All[0].PromptIds[i % Fixtures.All[0].PromptIds.Length])];
        using var original = model.CreateSession(options);
        original.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 3, StopAtEndOfGeneration = false }).ToList();
        using var buffer = new MemoryStream();
        original.Save(buffer);
        using var restored = model.CreateSession(options);
        restored.Load(new MemoryStream(buffer.ToArray()));
        Assert.Equal(original.Tokens.ToArray(), restored.Tokens.ToArray());
        for (int step = 0; step < 5; step++)
        {
            var expected = original.NextTokenLogits().ToArray();
            Assert.Equal(expected, restored.NextTokenLogits().ToArray());
            int token = Sampler.ArgMax(expected);
            original.GenerateTokens([token], new GenerationOptions { MaxTokens = 0 }).ToList();
            restored.GenerateTokens([token], new GenerationOptions { MaxTokens = 0 }).ToList();
        }
    }
}
