using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Synthetic;
using KvSharp.Tensors;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Bench;

public sealed class SyntheticModelTests : IDisposable
{
    /// <summary>A shape small enough to write and run in milliseconds: GQA 4/2, 64-wide (K-quants fall back), 300-token vocab.</summary>
    public static readonly SyntheticShape Micro = new("micro", "test shape", 64, 2, 4, 2, 128, 300, 64);

    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-synth-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("q8_0")]
    [InlineData("f32")]
    [InlineData("q4_k")]
    [InlineData("q4_1")]
    [InlineData("iq4_nl")]
    [InlineData("iq4_xs")]
    [InlineData("mxfp4")]
    public void WritesAModelThatLoadsAndGenerates(string typeName)
    {
        var type = SyntheticModelBuilder.ParseType(typeName);
        string path = Path.Combine(_dir, $"micro-{typeName}.gguf");
        SyntheticModelBuilder.Write(Micro, type, path, contextLength: 48);

        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal(Micro.ToConfig(48), model.Config with { Name = "" });
        Assert.Equal(SyntheticModelBuilder.TensorType(type, 64), model.Weights.Layers[0].Query.Type);
        Assert.Equal(SyntheticModelBuilder.TensorType(type, 128), model.Weights.Layers[0].Down.Type);
        using var session = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.Contiguous, ContextLength = 48 });
        var text = string.Concat(session.GenerateTokens([1, 300 - 1, 260], new GenerationOptions { MaxTokens = 10, StopAtEndOfGeneration = false }));
        Assert.Equal(10, session.LastStats!.GeneratedTokens);
        Assert.NotEmpty(text);
        // Random weights still give non-uniform, finite logits: the init keeps activations O(1).
        var logits = model.Evaluate([1, 5, 9], model.CreateCache(KvCacheMode.Contiguous, 48));
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        Assert.True(logits.Max() - logits.Min() > 1f);
    }

    [Fact]
    public void FilesAreByteDeterministicAndSeedDependent()
    {
        string a = Path.Combine(_dir, "a.gguf"), b = Path.Combine(_dir, "b.gguf"), c = Path.Combine(_dir, "c.gguf");
        SyntheticModelBuilder.Write(Micro, GgmlType.Q4_0, a, seed: 5);
        SyntheticModelBuilder.Write(Micro, GgmlType.Q4_0, b, seed: 5);
        SyntheticModelBuilder.Write(Micro, GgmlType.Q4_0, c, seed: 6);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*"));
    }

    [Fact]
    public void GetOrCreateCachesByShapeTypeContextAndSeed()
    {
        string first = SyntheticModelBuilder.GetOrCreate(Micro, GgmlType.Q8_0, 32, 9, _dir);
        var written = File.GetLastWriteTimeUtc(first);
        string again = SyntheticModelBuilder.GetOrCreate(Micro, GgmlType.Q8_0, 32, 9, _dir);
        Assert.Equal(first, again);
        Assert.Equal(written, File.GetLastWriteTimeUtc(again));
        Assert.Equal("micro-q8_0-ctx32-seed9-v1.gguf", Path.GetFileName(first));
        Assert.NotEqual(first, SyntheticModelBuilder.GetOrCreate(Micro, GgmlType.Q8_0, 40, 9, _dir));
    }

    public static TheoryData<string> ShapeNames => new(SyntheticShape.All.Select(s => s.Name));

    /// <summary>Every named shape's metadata (and tokenizer) round-trips through a metadata-only GGUF, without writing the big tensors.</summary>
    [Theory]
    [MemberData(nameof(ShapeNames))]
    public void EveryShapeRoundTripsItsConfig(string name)
    {
        var shape = SyntheticShape.Parse(name);
        string path = Path.Combine(_dir, name + ".meta.gguf");
        SyntheticModelBuilder.CreateWriter(shape, GgmlType.Q8_0, withTensors: false).Write(path);
        using var file = GgufFile.Open(path);
        Assert.Equal(shape.ToConfig(), ModelConfig.FromGguf(file) with { Name = "" });
        var tok = TokenizerFactory.FromGguf(file);
        Assert.Equal(shape.VocabSize, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal([1, .. tok.Encode("ab", addSpecial: false, parseSpecial: false)], tok.Encode("ab", addSpecial: true, parseSpecial: false));
    }

    [Fact]
    public void NamedShapesHaveTheIssuesDimensions()
    {
        var tiny = SyntheticShape.Parse("tiny").ToConfig();
        Assert.Equal((288, 6, 6, 6, 768, 32000), (tiny.EmbeddingDim, tiny.LayerCount, tiny.HeadCount, tiny.KvHeadCount, tiny.FeedForwardDim, tiny.VocabSize));
        var small = SyntheticShape.Parse("small").ToConfig();
        Assert.Equal((768, 12, 12, 12, 2048, 32000, 1024),
            (small.EmbeddingDim, small.LayerCount, small.HeadCount, small.KvHeadCount, small.FeedForwardDim, small.VocabSize, small.TrainedContextLength));
        var gqa = SyntheticShape.Parse("gqa");
        Assert.Equal("smollm2-135m", gqa.Name);
        Assert.Equal((576, 30, 9, 3, 64, 1536, 49152), (gqa.EmbeddingDim, gqa.LayerCount, gqa.HeadCount, gqa.KvHeadCount, gqa.HeadDim, gqa.FeedForwardDim, gqa.VocabSize));
        Assert.InRange(gqa.ParameterCount, 130_000_000, 140_000_000); // SmolLM2-135M, tied embeddings
        var llama = SyntheticShape.Parse("1b");
        Assert.Equal((2048, 16, 32, 8, 64, 8192, 128256), (llama.EmbeddingDim, llama.LayerCount, llama.HeadCount, llama.KvHeadCount, llama.HeadDim, llama.FeedForwardDim, llama.VocabSize));
        Assert.InRange(llama.ParameterCount, 1_200_000_000, 1_250_000_000); // Llama-3.2-1B: 1.24B with tied embeddings
        // KV bytes per token (F32): 2 x 16 layers x 8 kv heads x 64 x 4 = 65,536.
        Assert.Equal(65536, llama.ToConfig().KvBytesPerToken(4));
    }

    [Fact]
    public void BadNamesFailWithTheKnownNames()
    {
        var e = Assert.Throws<ArgumentException>(() => SyntheticShape.Parse("huge"));
        Assert.Contains("tiny, small, smollm2-135m, llama-3.2-1b", e.Message);
        var t = Assert.Throws<ArgumentException>(() => SyntheticModelBuilder.ParseType("iq2_xxs"));
        Assert.Contains("q8_0", t.Message);
    }

    [Fact]
    public void KQuantsFallBackLikeLlamaCppWhereRowsAreNotWholeBlocks()
    {
        Assert.Equal(GgmlType.Q4_K, SyntheticModelBuilder.TensorType(GgmlType.Q4_K, 768));
        Assert.Equal(GgmlType.Q5_0, SyntheticModelBuilder.TensorType(GgmlType.Q4_K, 288));
        Assert.Equal(GgmlType.Q5_1, SyntheticModelBuilder.TensorType(GgmlType.Q5_K, 576));
        Assert.Equal(GgmlType.Q8_0, SyntheticModelBuilder.TensorType(GgmlType.Q6_K, 288));
        Assert.Equal(GgmlType.F16, SyntheticModelBuilder.TensorType(GgmlType.Q8_0, 172));
        Assert.Equal(GgmlType.Q3_K, SyntheticModelBuilder.TensorType(GgmlType.Q3_K, 768));
        Assert.Equal(GgmlType.IQ4_NL, SyntheticModelBuilder.TensorType(GgmlType.Q3_K, 288));
        Assert.Equal(GgmlType.F16, SyntheticModelBuilder.TensorType(GgmlType.Q3_K, 172));
        Assert.Equal(GgmlType.IQ4_NL, SyntheticModelBuilder.TensorType(GgmlType.Q2_K, 288));
        Assert.Equal(GgmlType.IQ4_NL, SyntheticModelBuilder.TensorType(GgmlType.IQ4_XS, 288));
        Assert.Equal(GgmlType.F16, SyntheticModelBuilder.TensorType(GgmlType.IQ4_XS, 172));
    }

    [Fact]
    public void VocabularyIsDistinctAndSentencePieceShaped()
    {
        var (tokens, scores, types) = SyntheticVocabulary.Create(5000);
        Assert.Equal(tokens.Length, tokens.Distinct().Count());
        Assert.Equal("<0x41>", tokens[3 + 0x41]);
        Assert.Equal(6, types[3 + 0x41]);
        Assert.Equal((2, 3, 3, 1), (types[0], types[1], types[2], types[259]));
        Assert.True(scores[300] > scores[301]);
    }
}
