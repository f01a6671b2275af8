using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Models;
using KvSharp.Reference;
using KvSharp.Sampling;
using KvSharp.Tests.Reference;
using static KvSharp.Tests.Models.ArchitectureVariants;

namespace KvSharp.Tests.Models;

/// <summary>
/// The architectures beyond the fixtures' llama and qwen2, on files derived from the fixtures
/// (<see cref="ArchitectureVariants"/>):
/// - phi3 (fused attn_qkv and ffn_up, NeoX rope, sliding window, LongRoPE) against llama.cpp b4748's logits for the very
///   same files (recorded in Models/Architectures: the file's SHA-256, 32 greedy ids, and the logits of every eighth
///   prompt position and the last, F32 KV cache, 2 threads), with the fixtures' tolerances;
/// - qwen3 (per-head q/k RMSNorm), which b4748 predates, against <see cref="ReferenceModel"/> and by what the norm
///   implies: scaling one head's query projection changes nothing.
/// </summary>
public class ArchitectureParityTests
{
    private static readonly string GoldenDir = System.IO.Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Models", "Architectures");

    /// <summary>What llama.cpp computed for one variant, loaded with the context <see cref="Context"/>.</summary>
    private sealed record Golden(string Sha256, int Context, int[] Positions, int[] Greedy, float[] Logits)
    {
        public static Golden Read(string name)
        {
            string[] lines = File.ReadAllLines(System.IO.Path.Combine(GoldenDir, name + ".txt"));
            string Field(string key) => lines.Single(l => l.StartsWith(key + ":")).Split(':', 2)[1].Trim();
            int[] Ints(string key) => Field(key).Split(' ').Select(int.Parse).ToArray();
            var bytes = File.ReadAllBytes(System.IO.Path.Combine(GoldenDir, name + ".f32"));
            var logits = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, logits, 0, bytes.Length);
            return new Golden(Field("sha256"), int.Parse(Field("n_ctx")), Ints("positions"), Ints("greedy"), logits);
        }
    }

    public static TheoryData<string, string> LlamaCppCases() => new()
    {
        { Phi3F32.Name, Phi3F32.Name },
        { Phi3Q8.Name, Phi3Q8.Name },
        { Phi3Window.Name, Phi3Window.Name },
        { Phi3LongRope.Name, Phi3LongRope.Name + ".ctx512" },
        { Phi3LongRope.Name, Phi3LongRope.Name + ".ctx128" },
        { GemmaF32.Name, GemmaF32.Name },
        { Gemma2Q8.Name, Gemma2Q8.Name },
        { GraniteF32.Name, GraniteF32.Name },
        { LlamaOutputBiasF32.Name, LlamaOutputBiasF32.Name },
        { MixtralF32.Name, MixtralF32.Name },
        { MixtralQ8.Name, MixtralQ8.Name },
        { Qwen2MoeF32.Name, Qwen2MoeF32.Name },
        { Olmo2F32.Name, Olmo2F32.Name },
        { ExaoneQ8.Name, ExaoneQ8.Name },
        { GraniteMoeQ8.Name, GraniteMoeQ8.Name },
        { OlmoeF32.Name, OlmoeF32.Name },
        { Phi2F32.Name, Phi2F32.Name },
        { Phi2Q8.Name, Phi2Q8.Name },
        { StarCoder2F32.Name, StarCoder2F32.Name },
        { Gpt2F32.Name, Gpt2F32.Name },
        { StableLmQ8.Name, StableLmQ8.Name },
        { LlamaMlpBiasQ8.Name, LlamaMlpBiasQ8.Name },
        { GptNeoXF32.Name, GptNeoXF32.Name },
        { GptNeoXSeqQ8.Name, GptNeoXSeqQ8.Name },
        { FalconF32.Name, FalconF32.Name },
        { Falcon40BQ8.Name, Falcon40BQ8.Name },
        { CommandRF32.Name, CommandRF32.Name },
        { Cohere2F32.Name, Cohere2F32.Name },
        { StarCoderQ8.Name, StarCoderQ8.Name },
        { MiniCpmQ8.Name, MiniCpmQ8.Name },
        { Qwen2VlF32.Name, Qwen2VlF32.Name },
        { LlamaYarnF32.Name, LlamaYarnF32.Name },
        { Qwen2YarnQ8.Name, Qwen2YarnQ8.Name },
        { DeepSeek2F32.Name, DeepSeek2F32.Name },
        { DeepSeek2V3F32.Name, DeepSeek2V3F32.Name },
        { DeepSeek2SplitF32.Name, DeepSeek2F32.Name },
    };

    private static Variant ByName(string name) => All.Single(v => v.Name == name);

    [Theory]
    [MemberData(nameof(LlamaCppCases))]
    public void MatchesLlamaCpp(string variant, string goldenName)
    {
        var v = ByName(variant);
        string path = ArchitectureVariants.Path(v);
        var golden = Golden.Read(goldenName);
        // A file laid out anew (deepseek2-split) is held to the logits of the file it was laid out from.
        if (goldenName.StartsWith(variant, StringComparison.Ordinal)) Assert.Equal(golden.Sha256, Sha256(path));
        string type = v.Name.Split('.')[^1];
        var (maxTol, meanTol) = GeluF32(v) ? ReferenceOracle.Tolerance(ReferenceOracle.GeluF32)
            : LlamaCppParityTests.Tolerance(type);
        var prompt = Fixtures.All[0].PromptIds;

        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2, ContextLength = golden.Context });
        Assert.Equal(v.Architecture, model.Config.Architecture);
        int vocab = model.Config.VocabSize;
        var policy = KvCachePolicy.OfModel(model.Config, golden.Context);
        var batch = model.Evaluate(prompt, model.CreateCache(policy, KvCacheMode.Contiguous, golden.Context), allLogits: true);
        var cache = model.CreateCache(policy, KvCacheMode.Contiguous, golden.Context);
        var sequential = new float[prompt.Length * vocab];
        for (int i = 0; i < prompt.Length; i++) model.Evaluate(prompt.AsSpan(i, 1), cache).CopyTo(sequential, i * vocab);
        Assert.Equal(batch, sequential);

        var ours = golden.Positions.SelectMany(p => batch.AsSpan(p * vocab, vocab).ToArray()).ToArray();
        LlamaCppParityTests.Compare(golden.Logits, ours, vocab, maxTol, meanTol, $"{goldenName} vs llama.cpp");

        // Greedy continuation from the sequential cache: llama.cpp's ids while its choice is not nearly tied.
        var logits = sequential[^vocab..];
        for (int step = 0; step < golden.Greedy.Length; step++)
        {
            int token = Sampler.ArgMax(logits);
            if (ReferenceOracle.TopTwoMargin(logits) < 2 * maxTol) break;
            Assert.True(golden.Greedy[step] == token, $"{goldenName}: greedy step {step}: llama.cpp {golden.Greedy[step]}, ours {token}");
            logits = model.Evaluate([token], cache);
        }
    }

    /// <summary>
    /// Gemma 3 (which llama.cpp b4748 predates) against the reference, on every cache kind: its local layers' window
    /// of 24 is passed at position 24 of the 150-token prompt, its global layer (the sixth) sees everything, the two
    /// kinds of layer turn with their own rope bases.
    /// </summary>
    [Theory]
    [InlineData("F32")]
    [InlineData("Q8_0")]
    public void Gemma3MatchesTheReferenceOnEveryCache(string type)
    {
        var v = type == "F32" ? Gemma3F32 : Gemma3Q8;
        using var model = LlmModel.Load(ArchitectureVariants.Path(v), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        Assert.Equal(("gemma3", 6, 24, 10000f, 1_000_000f, 0.125f), (c.Architecture, c.LayerCount, c.SlidingWindow, c.LocalRopeTheta, c.RopeTheta, c.RopeFrequencyScale));
        Assert.Equal([24, 24, 24, 24, 24, 0], Enumerable.Range(0, 6).Select(c.LayerWindow));
        FastPathMatchesReferenceTests.AssertEveryCacheMatches(model, type == "F32" ? ReferenceOracle.GeluF32 : type, v.Name);
    }

    /// <summary>The reference agrees with the fast path on every cache kind for the variants llama.cpp checks too.</summary>
    [Theory]
    [InlineData("phi3.Q8_0")]
    [InlineData("phi3-window24.F32")]
    [InlineData("phi3-longrope.F32")]
    [InlineData("gemma.F32")]
    [InlineData("granite.F32")]
    [InlineData("llama-output-bias.F32")]
    [InlineData("mixtral-4x2.F32")]
    [InlineData("qwen3moe-8x3.F32")]
    [InlineData("qwen2moe-4x2.F32")]
    [InlineData("olmo2.F32")]
    [InlineData("smollm3-4l.F32")]
    [InlineData("olmoe-4x2.F32")]
    [InlineData("phi2.F32")]
    [InlineData("phi2.Q8_0")]
    [InlineData("starcoder2.F32")]
    [InlineData("gpt2.F32")]
    [InlineData("stablelm.Q8_0")]
    [InlineData("llama-mlp-bias.Q8_0")]
    [InlineData("gptneox.F32")]
    [InlineData("gptneox-seq.Q8_0")]
    [InlineData("falcon.F32")]
    [InlineData("falcon-40b.Q8_0")]
    [InlineData("command-r.F32")]
    [InlineData("cohere2-4l.F32")]
    [InlineData("starcoder.Q8_0")]
    [InlineData("minicpm.Q8_0")]
    [InlineData("qwen2vl.F32")]
    [InlineData("llama-yarn.F32")]
    [InlineData("qwen2-yarn.Q8_0")]
    public void TheReferenceRunsEveryVariantAsTheFastPathDoes(string variant)
    {
        var v = ByName(variant);
        using var model = LlmModel.Load(ArchitectureVariants.Path(v), new ModelLoadOptions { Threads = 2, ContextLength = 512 });
        string type = v.Name.Split('.')[^1];
        FastPathMatchesReferenceTests.AssertEveryCacheMatches(model, GeluF32(v) ? ReferenceOracle.GeluF32 : type, v.Name);
    }

    /// <summary>
    /// An F32 model whose activation is ggml's GELU (a table of halves): an input a rounding away from a half's boundary
    /// lands in the next entry, so such models are held to the wider GELU tolerance.
    /// </summary>
    private static bool GeluF32(Variant v) => v.Name.EndsWith(".F32") && v.Architecture is "gemma" or "gemma2" or "gemma3" or "phi2" or "starcoder2" or "gpt2" or "gptneox" or "falcon";

    /// <summary>
    /// A mixture of experts: the config as the file says, each expert a view of its own slice, and a step of 40
    /// sequences giving each the logits it gets alone (the experts multiply the rows that chose them grouped, so
    /// which rows share an expert must not change a bit).
    /// </summary>
    [Fact]
    public void MixtureOfExpertsKeepsBatchInvariance()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Qwen3MoeQ8), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        Assert.Equal((8, 3, 768, true, true), (c.ExpertCount, c.ExpertsUsed, c.ExpertFeedForwardDim, c.NormalizeExpertWeights, c.IsMixtureOfExperts));
        var moe = model.Weights.Layers[0].Experts!;
        Assert.Equal(8, moe.Count);
        Assert.True(moe.Gate[1].Row(0).SequenceEqual(moe.Gate[0].Row(37)), "expert 1's gate is expert 0's rotated by 37 rows");

        var prompt = Fixtures.All[0].PromptIds.AsSpan(0, 40).ToArray();
        // Each token alone and all of them as one step of many sequences give the same bits.
        var forward = model.CreateForwardPass();
        var caches = prompt.Select(_ => model.CreateCache(KvCacheMode.Contiguous, 8)).ToArray();
        int vocab = c.VocabSize;
        var together = new float[prompt.Length * vocab];
        forward.Forward(prompt, caches.Select(kv => new BatchSegment(kv, 1, LogitsRequest.Last)).ToArray(), together);
        for (int i = 0; i < prompt.Length; i++)
        {
            var alone = model.Evaluate([prompt[i]], model.CreateCache(KvCacheMode.Contiguous, 8));
            Assert.True(alone.AsSpan().SequenceEqual(together.AsSpan(i * vocab, vocab)), $"token {i}: alone differs from the batched step");
        }
        Assert.True(model.Weights.ActiveMatrixBytes(3) < model.Weights.MatrixBytes, "a token reads 3 of 8 experts");
    }

    /// <summary>
    /// The engine's continuous batching (paged blocks of 16, prefix cache, steps mixing prefill chunks and decodes) on
    /// windowed layers and on experts: eight concurrent requests of 30-64 prompt tokens (past gemma3's window of 24),
    /// four joining mid-flight, each generating exactly what it generates alone in a session.
    /// </summary>
    [Theory]
    [InlineData("gemma3-6l.Q8_0")]
    [InlineData("gemma2-26l.Q8_0")]
    [InlineData("qwen3moe-8x3.Q8_0")]
    [InlineData("deepseek2-v3.F32")]
    [InlineData("gpt-oss.F32")]
    public void TheEngineBatchesNewArchitecturesAsEachRequestRunsAlone(string variant)
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(ByName(variant)), new ModelLoadOptions { Threads = 2 });
        var prompt = Fixtures.All[0].PromptIds;
        var options = new GenerationOptions { MaxTokens = 12, StopAtEndOfGeneration = false, Sampling = KvSharp.Sampling.SamplingOptions.Greedy };
        var requests = Enumerable.Range(0, 8).Select(i => new EngineRequest
        {
            // Prompts sharing their first 20 tokens (prefix-cache hits), each then its own.
            PromptTokens = [.. prompt.Take(20), .. prompt.Skip(20 + i).Take(10 + 5 * i)],
            Options = options,
        }).ToArray();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 96, BlockSize = 16, MaxStepTokens = 48 });
        var handles = requests.Take(4).Select(engine.Submit).ToList();
        for (int step = 0; step < 3; step++) engine.Step();
        handles.AddRange(requests.Skip(4).Select(engine.Submit));
        engine.RunUntilIdle();
        for (int i = 0; i < requests.Length; i++)
        {
            using var session = model.CreateSession(new SessionOptions { ContextLength = 128 });
            session.GenerateTokens(requests[i].PromptTokens, options).ToList();
            Assert.Equal(session.Tokens.Skip(requests[i].PromptTokens.Count), handles[i].OutputTokens[0]);
        }
    }

    [Fact]
    public void Gemma2AlternatesWindowedAndGlobalLayersAndCapsScoresAndLogits()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Gemma2Q8), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        Assert.Equal((26, 2f, 5f, FeedForwardActivation.GeluTanh, MathF.Sqrt(256)), (c.LayerCount, c.AttentionSoftCap, c.FinalLogitSoftCap, c.Activation, c.EmbeddingScale));
        Assert.Equal(Enumerable.Range(0, 26).Select(l => l % 2 == 0 ? 24 : 0), Enumerable.Range(0, 26).Select(c.LayerWindow));
        FastPathMatchesReferenceTests.AssertEveryCacheMatches(model, "Q8_0", Gemma2Q8.Name);
        var logits = model.Evaluate(Fixtures.All[0].PromptIds, model.CreateCache(KvCacheMode.Contiguous, 128));
        Assert.All(logits, x => Assert.InRange(x, -5f, 5f));
    }

    /// <summary>
    /// SmolLM3 rotates no query or key in every fourth layer (llama.cpp hard-codes the step): the same file run as llama
    /// (every layer rotated) gives other logits, and it refuses what would re-rotate its cache.
    /// </summary>
    [Fact]
    public void SmolLm3LeavesEveryFourthLayerUnrotated()
    {
        string path = ArchitectureVariants.Path(SmolLm3F32);
        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal([true, true, true, false], Enumerable.Range(0, 4).Select(model.Config.RotatesLayer));
        var prompt = Fixtures.All[0].PromptIds.AsSpan(0, 16).ToArray();
        var smol = model.Evaluate(prompt, model.CreateCache(KvCacheMode.Contiguous, 32));
        // The same file as a llama: the architecture and its keys renamed, every tensor as it is.
        string renamed = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-test-{Guid.NewGuid():N}.gguf");
        using (var g = KvSharp.Gguf.GgufFile.Open(path))
        {
            var w = new KvSharp.Gguf.GgufWriter(g.Alignment, g.Version);
            foreach (var key in g.MetadataKeys)
                if (key != "general.alignment")
                    w.Add(key == "general.architecture" ? key : key.Replace("smollm3.", "llama."), key == "general.architecture" ? KvSharp.Gguf.GgufValue.Of("llama") : g.Metadata[key]);
            foreach (var t in g.Tensors) w.AddTensor(t.Name, t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray());
            w.Write(renamed);
        }
        using var llama = LlmModel.Load(renamed, new ModelLoadOptions { Threads = 2 });
        var rotated = llama.Evaluate(prompt, llama.CreateCache(KvCacheMode.Contiguous, 32));
        Assert.True(smol.Zip(rotated).Max(p => MathF.Abs(p.First - p.Second)) > 1e-3f, "the NoPE layer made no difference");
        var e = Assert.Throws<NotSupportedException>(() => model.CreateCache(KvCachePolicy.SlidingWindow(8), KvCacheMode.Contiguous, 32));
        Assert.Contains("every 4th layer rotates neither queries nor keys", e.Message);
    }

    /// <summary>
    /// gpt2's positions are a learned table of 512 rows added to the embedding: it matters (without it the logits
    /// change), a sequence past the table is refused with the reason, and so are the caches that would move or re-rotate
    /// keys to other positions.
    /// </summary>
    [Fact]
    public void Gpt2LearnsItsPositionsAndGoesNoFurtherThanItsTable()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Gpt2F32), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        Assert.Equal((true, 0, false, true, false), (c.LearnedPositions, c.RopeDimensions, c.RotatesLayer(0), c.LayerNorm, c.GatedFeedForward));
        Assert.Equal(512, model.Weights.PositionEmbedding!.Value.Rows);
        var prompt = Fixtures.All[0].PromptIds;
        // The same token at two positions: only the position embedding tells them apart before attention.
        var cache = model.CreateCache(KvCacheMode.Contiguous, 600);
        var first = model.Evaluate(prompt.AsSpan(0, 1), cache).ToArray();
        cache = model.CreateCache(KvCacheMode.Contiguous, 600);
        model.Evaluate(Enumerable.Repeat(prompt[0], 3).ToArray(), cache);
        var later = model.Evaluate(prompt.AsSpan(0, 1), cache).ToArray();
        Assert.True(first.Zip(later).Max(p => MathF.Abs(p.First - p.Second)) > 1e-3f);

        var tokens = Enumerable.Range(0, 512).Select(i => prompt[i % prompt.Length]).ToArray();
        cache = model.CreateCache(KvCacheMode.Contiguous, 600);
        model.Evaluate(tokens, cache);
        var e = Assert.Throws<ContextOverflowException>(() => model.Evaluate(prompt.AsSpan(0, 1), cache));
        Assert.Contains("learned position embeddings for 512 positions only", e.Message);
        var refused = Assert.Throws<NotSupportedException>(() => model.CreateCache(KvCachePolicy.SlidingWindow(16), KvCacheMode.Contiguous, 64));
        Assert.Contains("learned embedding", refused.Message);

        // A session or an engine asked for more context than the table is refused up front; by default they get the table.
        using (var session = model.CreateSession()) Assert.Equal(512, session.ContextLength);
        var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateSession(new KvSharp.Engine.SessionOptions { ContextLength = 1024 }));
        Assert.Contains("learned position embeddings for 512 positions only", tooLong.Message);
        tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => new KvSharp.Engine.LlmEngine(model, new KvSharp.Engine.EngineOptions { ContextLength = 1024 }));
        Assert.Contains("learned position embeddings for 512 positions only", tooLong.Message);
    }

    /// <summary>A LongRoPE model loaded for its original context (short factors): sessions default to that context, and a longer one is refused with what to do.</summary>
    [Fact]
    public void ALongRopeModelLoadedShortGivesSessionsItsOriginalContext()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Phi3LongRope), new ModelLoadOptions { Threads = 1, ContextLength = LongRopeOriginalContext });
        using (var session = model.CreateSession()) Assert.Equal(LongRopeOriginalContext, session.ContextLength);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateSession(new KvSharp.Engine.SessionOptions { ContextLength = 512 }));
        Assert.Contains("load it with a longer context", e.Message);
    }

    /// <summary>Qwen2-VL's M-RoPE with a fourth section (dimensions text would leave unrotated) is refused by name, not run as NeoX.</summary>
    [Fact]
    public void AQwen2VlFileWithAFourthRopeSectionIsRefusedByName()
    {
        string path = GgufRewrite.Rewrite(ArchitectureVariants.Path(Qwen2VlF32),
            metadata: (k, v) => k == "qwen2vl.rope.dimension_sections" ? KvSharp.Gguf.GgufValue.Of([8, 12, 8, 4]) : v);
        var e = Assert.Throws<KvSharp.Models.ModelFormatException>(() => LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }));
        Assert.Contains("'qwen2vl.rope.dimension_sections' = [8, 12, 8, 4] has a fourth section", e.Message);
    }

    /// <summary>A bias the first block has, every block must have: a llama file missing one in a later block is refused by name.</summary>
    [Fact]
    public void ABiasMissingFromALaterBlockIsNamed()
    {
        string source = ArchitectureVariants.Path(LlamaMlpBiasQ8);
        string path = GgufRewrite.Rewrite(source, tensor: t => t.Name == "blk.1.ffn_up.bias" ? null : (t.Type, t.Dimensions, ReadTensor(source, t.Name)));
        var e = Assert.Throws<KvSharp.Models.ModelFormatException>(() => LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }));
        Assert.Contains("'blk.1.ffn_up.bias' is missing", e.Message);
    }

    [Fact]
    public void ModelsWithLayerWindowsRefusePoliciesKiviAndContextShiftByName()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Gemma3F32), new ModelLoadOptions { Threads = 1 });
        var e = Assert.Throws<NotSupportedException>(() => model.CreateCache(KvCachePolicy.SlidingWindow(16), KvCacheMode.Contiguous, 64));
        Assert.Contains("does not apply to gemma3", e.Message);
        e = Assert.Throws<NotSupportedException>(() => model.CreateCache(KvCacheMode.Contiguous, 64, KvElementType.Kivi4));
        Assert.Contains("KIVI", e.Message);
        var cache = model.CreateCache(KvCacheMode.Contiguous, 64);
        model.Evaluate([1, 2, 3, 4], cache);
        e = Assert.Throws<NotSupportedException>(() => cache.Shift(1, 2, model.Rope));
        Assert.Contains("context shift", e.Message);
        Assert.Equal(KvCachePolicy.Full, KvCachePolicy.OfModel(model.Config, 64));
        var refused = Assert.Throws<ArgumentException>(() =>
            model.CreateSession(new KvSharp.Engine.SessionOptions { ContextLength = 64, ContextOverflow = ContextOverflow.Shift }));
        Assert.Contains("ContextOverflow.Shift does not apply to gemma3", refused.Message);
    }

    /// <summary>convert_hf_to_gguf writes a sliding window of 0 for Phi-4 (none in its config): no window, not an error.</summary>
    [Fact]
    public void Phi3WithASlidingWindowOfZeroHasNone()
    {
        string path = GgufRewrite.Rewrite(ArchitectureVariants.Path(Phi3F32),
            metadata: (key, value) => key == "phi3.attention.sliding_window" ? KvSharp.Gguf.GgufValue.Of(0u) : value);
        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 });
        Assert.Null(model.Config.SlidingWindow);
        Assert.Equal(KvCachePolicy.Full, KvCachePolicy.OfModel(model.Config, 512));
    }

    [Fact]
    public void Phi3FusedMatricesGiveTheLlamaWeightsTheirOwnViews()
    {
        using var phi3 = LlmModel.Load(ArchitectureVariants.Path(Phi3Q8), new ModelLoadOptions { Threads = 1 });
        using var llama = LlmModel.Load(TestPaths.Fixture(Phi3Q8.Source), new ModelLoadOptions { Threads = 1 });
        for (int l = 0; l < llama.Config.LayerCount; l++)
        {
            var (a, b) = (phi3.Weights.Layers[l], llama.Weights.Layers[l]);
            foreach (var (fused, own) in new[] { (a.Query, b.Query), (a.Key, b.Key), (a.Value, b.Value), (a.Gate, b.Gate), (a.Up, b.Up) })
            {
                Assert.Equal((own.Type, own.Rows, own.Cols), (fused.Type, fused.Rows, fused.Cols));
                for (int r = 0; r < own.Rows; r++) Assert.True(own.Row(r).SequenceEqual(fused.Row(r)), $"layer {l} row {r}");
            }
        }
    }

    [Fact]
    public void LongRopeWithItsShortFactorsRefusesPositionsPastTheOriginalContext()
    {
        using var model = LlmModel.Load(ArchitectureVariants.Path(Phi3LongRope), new ModelLoadOptions { Threads = 2, ContextLength = LongRopeOriginalContext });
        Assert.Equal(LongRopeOriginalContext, model.Weights.RopePositionLimit);
        var cache = model.CreateCache(KvCacheMode.Contiguous, 512);
        model.Evaluate(new int[LongRopeOriginalContext], cache);
        var e = Assert.Throws<KvSharp.Models.ContextOverflowException>(() => model.Evaluate([1], cache));
        Assert.Contains($"original {LongRopeOriginalContext}-token context", e.Message);
        Assert.Contains("ContextLength", e.Message);

        // By default sessions may use the trained context (512 here), so the long factors, as llama.cpp takes at its default n_ctx.
        using var longModel = LlmModel.Load(ArchitectureVariants.Path(Phi3LongRope), new ModelLoadOptions { Threads = 2 });
        Assert.Null(longModel.Weights.RopePositionLimit);
        longModel.Evaluate(new int[LongRopeOriginalContext + 1], longModel.CreateCache(KvCacheMode.Contiguous, 512));
    }

    [Theory]
    [InlineData("F32")]
    [InlineData("Q8_0")]
    public void Qwen3MatchesTheReferenceModel(string type)
    {
        var v = type == "F32" ? Qwen3F32 : Qwen3Q8;
        using var model = LlmModel.Load(ArchitectureVariants.Path(v), new ModelLoadOptions { Threads = 2 });
        Assert.Equal("qwen3", model.Config.Architecture);
        Assert.True(model.Config.HasQkNorm);
        Assert.All(model.Weights.Layers, l => Assert.Null(l.QueryBias));
        FastPathMatchesReferenceTests.AssertEveryCacheMatches(model, type, v.Name);
    }

    /// <summary>
    /// The q/k norm is per head: tripling one head's query rows (F32, so exactly) leaves qwen3's logits as they were, and
    /// moves qwen2's (the same weights without the norms) - so the norm is there, and over a head, not the whole vector.
    /// </summary>
    [Fact]
    public void Qwen3NormalisesEachHeadOfTheQueries()
    {
        string scaled = Rescaled(ArchitectureVariants.Path(Qwen3F32));
        var prompt = Fixtures.All[0].PromptIds.AsSpan(0, 24).ToArray();
        float[] Run(string path)
        {
            using var m = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            return m.Evaluate(prompt, m.CreateCache(KvCacheMode.Contiguous, 64), allLogits: true);
        }
        var before = Run(ArchitectureVariants.Path(Qwen3F32));
        var after = Run(scaled);
        Assert.True(before.Zip(after).Max(p => MathF.Abs(p.First - p.Second)) < 1e-4f, "tripling head 0's query rows changed qwen3's logits");

        string qwen2 = Rescaled(TestPaths.Fixture(Qwen3F32.Source));
        float moved = Run(TestPaths.Fixture(Qwen3F32.Source)).Zip(Run(qwen2)).Max(p => MathF.Abs(p.First - p.Second));
        Assert.True(moved > 0.01f, $"tripling head 0's query rows should move qwen2's logits, moved {moved}");
    }

    /// <summary>A copy whose blk.*.attn_q.weight has its first head's rows (and bias) times 3.</summary>
    private static string Rescaled(string source)
    {
        using var g = KvSharp.Gguf.GgufFile.Open(source);
        var config = KvSharp.Models.ModelConfig.FromGguf(g);
        int rowsOfHead = config.HeadDim, cols = config.EmbeddingDim;
        var w = new KvSharp.Gguf.GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys) if (key != "general.alignment") w.Add(key, g.Metadata[key]);
        foreach (var t in g.Tensors)
        {
            var data = g.GetTensorBytes(t).ToArray();
            bool q = t.Name.EndsWith(".attn_q.weight"), bias = t.Name.EndsWith(".attn_q.bias");
            if (q || bias)
            {
                Assert.Equal(KvSharp.Tensors.GgmlType.F32, t.Type);
                var f = new float[data.Length / 4];
                Buffer.BlockCopy(data, 0, f, 0, data.Length);
                for (int i = 0; i < (q ? rowsOfHead * cols : rowsOfHead); i++) f[i] *= 3;
                Buffer.BlockCopy(f, 0, data, 0, data.Length);
            }
            w.AddTensor(t.Name, t.Type, t.Dimensions, data);
        }
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kvsharp-test-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        return path;
    }

    [Fact]
    public void ATensorTheArchitectureDoesNotUseIsRefusedByName()
    {
        string path = GgufRewrite.Rewrite("llama-gqa.F32.gguf",
            add: w => w.AddTensor("blk.0.attn_norm.bias", [256], new float[256]));
        var e = Assert.Throws<KvSharp.Models.ModelFormatException>(() => LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }));
        Assert.Contains("'blk.0.attn_norm.bias'", e.Message);
        Assert.Contains("llama", e.Message);
    }

    [Fact]
    public void Qwen3WithoutItsNormsIsRefusedByName()
    {
        string path = GgufRewrite.Rewrite(ArchitectureVariants.Path(Qwen3F32),
            tensor: t => t.Name == "blk.1.attn_k_norm.weight" ? null : (t.Type, t.Dimensions, ReadTensor(ArchitectureVariants.Path(Qwen3F32), t.Name)));
        var e = Assert.Throws<KvSharp.Models.ModelFormatException>(() => LlmModel.Load(path, new ModelLoadOptions { Threads = 1 }));
        Assert.Contains("'blk.1.attn_k_norm.weight' is missing", e.Message);
    }

    private static byte[] ReadTensor(string path, string name)
    {
        using var g = KvSharp.Gguf.GgufFile.Open(path);
        return g.GetTensorBytes(g.Tensors.Single(t => t.Name == name)).ToArray();
    }
}
