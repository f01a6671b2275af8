using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>
/// Files damaged in ways that used to load and then crash or quietly generate nothing: each now fails with one
/// line that says what and where.
/// </summary>
public class DamagedModelTests
{
    private static readonly string Tok512 = TestPaths.Model("tok512.bin");

    /// <summary>Runs a few greedy tokens, as `kvsharp run` would.</summary>
    private static void Generate(string path, string? tokenizer = null)
    {
        using var model = LlmModel.Load(path, new ModelLoadOptions { TokenizerPath = tokenizer, Threads = 2 });
        using var session = model.CreateSession();
        _ = session.Generate("Once upon", new GenerationOptions { MaxTokens = 4 }).ToList();
    }

    private static Exception Fails(Action action, params string[] delete)
    {
        try
        {
            var e = Record.Exception(action);
            Assert.NotNull(e);
            Assert.DoesNotContain('\n', e.Message);
            return e;
        }
        finally
        {
            foreach (var f in delete) File.Delete(f);
        }
    }

    private static string Rewrite(string fixture, Func<string, GgufValue, GgufValue>? metadata = null,
        Func<GgufTensorInfo, (GgmlType Type, long[] Dims, byte[] Data)?>? tensor = null) => GgufRewrite.Rewrite(fixture, metadata, tensor);

    private static string DamageTensor(string fixture, string name, Action<byte[]> damage)
    {
        using var g = GgufFile.Open(fixture.Contains('/') ? fixture : TestPaths.Fixture(fixture));
        var original = g.Tensors.ToDictionary(t => t.Name, t => g.GetTensorBytes(t).ToArray());
        return Rewrite(fixture, tensor: t =>
        {
            var data = original[t.Name];
            if (t.Name == name) damage(data);
            return (t.Type, t.Dimensions, data);
        });
    }

    [Fact]
    public void NaNWeightsStopGenerationNamingTheLayer()
    {
        string path = DamageTensor("llama-gqa.F32.gguf", "blk.1.attn_q.weight", d => BitConverter.TryWriteBytes(d.AsSpan(400), float.NaN));
        var e = Assert.IsType<NonFiniteActivationsException>(Fails(() => Generate(path), path));
        Assert.Equal("layer 1 of 2 (blk.1.*)", e.Stage);
        Assert.Equal("model 'llama-gqa': the forward pass produced NaN or infinity, first in the output of layer 1 of 2 (blk.1.*); the weights there are damaged", e.Message);
    }

    [Fact]
    public void TheEngineFailsTheRequestsOfANonFiniteStepAndServesOn()
    {
        string path = DamageTensor("llama-gqa.F32.gguf", "blk.1.attn_q.weight", d => BitConverter.TryWriteBytes(d.AsSpan(400), float.NaN));
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            using var engine = new LlmEngine(model, new EngineOptions { BlockCount = 64, BlockSize = 4 });
            var one = engine.Submit(new EngineRequest { PromptTokens = [1, 2, 3, 4, 5], Options = new GenerationOptions { MaxTokens = 4 } });
            var two = engine.Submit(new EngineRequest { PromptTokens = [1, 7, 8], Options = new GenerationOptions { MaxTokens = 4 }, SampleCount = 2 });
            engine.RunUntilIdle();
            foreach (var h in new[] { one, two })
            {
                Assert.Equal(RequestStatus.Failed, h.Status);
                Assert.True(h.IsDone);
                Assert.Contains("layer 1 of 2 (blk.1.*)", h.Error);
            }
            Assert.Equal(0, engine.Pool.UsedBlocks);
            Assert.False(engine.HasWork);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void InfiniteEmbeddingAndClassifierAreNamed()
    {
        string embd = DamageTensor("llama-gqa.F32.gguf", "token_embd.weight", d =>
        {
            for (int i = 0; i < d.Length; i += 4) BitConverter.TryWriteBytes(d.AsSpan(i), float.PositiveInfinity);
        });
        Assert.Equal("the token embedding (token_embd.weight)", Assert.IsType<NonFiniteActivationsException>(Fails(() => Generate(embd), embd)).Stage);
        string output = DamageTensor("llama-gqa.F32.gguf", "output.weight", d => BitConverter.TryWriteBytes(d.AsSpan(0), float.NaN));
        Assert.Equal("the output norm and classifier (output_norm.weight, output.weight)", Assert.IsType<NonFiniteActivationsException>(Fails(() => Generate(output), output)).Stage);
    }

    /// <summary>
    /// A Q4_K block whose f16 scale became NaN: the activations after it are NaN when they reach the next K-quant
    /// matmul, whose Q8_K quantizer used to search past the block for the largest magnitude (IndexOutOfRangeException).
    /// </summary>
    [Fact]
    public void NaNScaleInAQuantizedBlockIsReportedNotCrashed()
    {
        string path = DamageTensor("llama-gqa.Q4_K_M.gguf", "blk.0.attn_q.weight", d => { d[0] = 0xFF; d[1] = 0x7F; });
        var e = Assert.IsType<NonFiniteActivationsException>(Fails(() => Generate(path), path));
        Assert.Equal("layer 0 of 2 (blk.0.*)", e.Stage);
    }

    [Fact]
    public void InfiniteRmsEpsilonIsRejected()
    {
        string path = Rewrite("llama-gqa.F32.gguf", (k, v) => k == "llama.attention.layer_norm_rms_epsilon" ? GgufValue.Of(float.PositiveInfinity) : v);
        var e = Assert.IsType<ModelFormatException>(Fails(() => Generate(path), path));
        Assert.Contains("must be positive and finite", e.Message);
    }

    [Theory]
    [InlineData("llama.block_count", "a bool", "has type Bool, expected an integer")]
    [InlineData("llama.embedding_length", "a float", "has type Float32, expected an integer")]
    [InlineData("llama.attention.layer_norm_rms_epsilon", "an integer", "has type UInt32, expected a float")]
    [InlineData("llama.context_length", "a string", "has type String, expected an integer")]
    [InlineData("llama.attention.head_count_kv", "an array", "has type array of Int32, expected an integer")]
    public void MetadataOfTheWrongTypeIsNamed(string key, string replacement, string message)
    {
        GgufValue value = replacement switch
        {
            "a bool" => GgufValue.Of(true),
            "a float" => GgufValue.Of(256f),
            "an integer" => GgufValue.Of(925353388u),
            "a string" => GgufValue.Of("512"),
            _ => GgufValue.Of(new[] { 2 }),
        };
        string path = Rewrite("llama-gqa.F32.gguf", (k, v) => k == key ? value : v);
        var e = Assert.IsAssignableFrom<FormatException>(Fails(() => Generate(path), path));
        Assert.Contains($"'{key}' {message}", e.Message);
    }

    [Fact]
    public void BlockCountThatDisagreesWithTheTensorsIsNamed()
    {
        string fewer = Rewrite("llama-gqa.F32.gguf", (k, v) => k == "llama.block_count" ? GgufValue.Of(1u) : v);
        Assert.Contains("metadata says 1 blocks but the file has tensors for block 1", Fails(() => Generate(fewer), fewer).Message);
        string more = Rewrite("llama-gqa.F32.gguf", (k, v) => k == "llama.block_count" ? GgufValue.Of(65541u) : v);
        Assert.Contains("metadata says 65541 blocks but tensor 'blk.65540.attn_norm.weight' is missing", Fails(() => Generate(more), more).Message);
    }

    [Fact]
    public void Llama2cHeaderWithTheSmallestVocabSizeIsRejected()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.bin");
        var bytes = File.ReadAllBytes(TestPaths.Model("stories260K.bin"));
        BitConverter.TryWriteBytes(bytes.AsSpan(20), int.MinValue);
        File.WriteAllBytes(path, bytes);
        var e = Assert.IsType<ModelFormatException>(Fails(() => Generate(path, Tok512), path));
        Assert.Contains("vocab_size -2147483648 is out of range", e.Message);
    }

    [Fact]
    public void TextFileNamedGgufIsNeitherFormat()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("Once upon a time there was a little girl named Lily.\n", 40)));
        var e = Assert.IsType<ModelFormatException>(Fails(() => Generate(path), path));
        Assert.Contains("neither a GGUF file (it does not start with \"GGUF\") nor a plausible llama2.c checkpoint", e.Message);
    }

    [Fact]
    public void DirectoryAsModelPathIsCalledADirectory()
    {
        var e = Fails(() => Generate(TestPaths.Models));
        Assert.IsAssignableFrom<IOException>(e);
        Assert.IsNotType<FileNotFoundException>(e);
        Assert.Contains("is a directory, not a model file", e.Message);
        Assert.Contains("is a directory, not a tokenizer file",
            Fails(() => Generate(TestPaths.Model("stories260K.bin"), TestPaths.Models)).Message);
    }

    [Fact]
    public void TokenizerForAnotherVocabularyIsRejected()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.bin");
        var bytes = File.ReadAllBytes(Tok512);
        File.WriteAllBytes(path, bytes[..FirstTokensEnd(bytes, 300)]);
        var e = Assert.IsType<ModelFormatException>(Fails(() => Generate(TestPaths.Model("stories260K.bin"), path), path));
        Assert.Contains("holds 300 tokens but the checkpoint", e.Message);
        Assert.Contains("has a vocabulary of 512", e.Message);
    }

    /// <summary>The byte offset just past the first <paramref name="count"/> entries of a tokenizer.bin.</summary>
    internal static int FirstTokensEnd(byte[] tokenizerBin, int count)
    {
        int pos = 4;
        for (int i = 0; i < count; i++) pos += 8 + BitConverter.ToInt32(tokenizerBin, pos + 4);
        return pos;
    }
}
