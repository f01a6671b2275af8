using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Tests.Models;

/// <summary>Files that do not describe a model we can run fail to load with a message naming what is wrong.</summary>
public class BadModelTests
{
    private static string Rewrite(string fixture, Func<string, GgufValue, GgufValue>? metadata = null,
        Func<GgufTensorInfo, (GgmlType Type, long[] Dims, byte[] Data)?>? tensor = null) => GgufRewrite.Rewrite(fixture, metadata, tensor);

    private static Exception LoadFails(string path)
    {
        try
        {
            var e = Record.Exception(() => LlmModel.Load(path).Dispose());
            Assert.NotNull(e);
            return e;
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void UnknownArchitectureIsNamed()
    {
        var e = LoadFails(Rewrite("llama-gqa.F32.gguf", (k, v) => k == "general.architecture" ? GgufValue.Of("mamba") : v));
        Assert.IsType<ModelFormatException>(e);
        Assert.Contains("architecture 'mamba' is not supported", e.Message);
    }

    [Fact]
    public void TensorShapeThatDisagreesWithTheMetadataIsNamed()
    {
        var e = LoadFails(Rewrite("llama-gqa.F32.gguf", (k, v) => k == "llama.feed_forward_length" ? GgufValue.Of(1024u) : v));
        Assert.IsType<ModelFormatException>(e);
        Assert.Contains("'blk.0.ffn_gate.weight' has shape [256, 768], expected [256, 1024]", e.Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var e = LoadFails(Rewrite("qwen2-bias.F32.gguf", tensor: t => t.Name == "blk.1.attn_k.bias" ? null : (t.Type, t.Dimensions, new byte[t.ByteSize])));
        Assert.Contains("tensor 'blk.1.attn_k.bias' is missing", e.Message);
    }

    [Fact]
    public void TensorTypeWeCannotComputeWithIsNamed()
    {
        var e = LoadFails(Rewrite("llama-gqa.F32.gguf", tensor: t => t.Name == "blk.0.attn_v.weight"
            ? (GgmlType.IQ2_XXS, t.Dimensions, new byte[GgmlTypes.RowBytes(GgmlType.IQ2_XXS, t.Dimensions[0]) * t.Dimensions[1]])
            : (t.Type, t.Dimensions, new byte[t.ByteSize])));
        Assert.Contains("'blk.0.attn_v.weight' has type IQ2_XXS, which KvSharp cannot compute with", e.Message);
    }

    [Fact]
    public void InconsistentHeadCountsAreNamed()
    {
        var e = LoadFails(Rewrite("llama-gqa.F32.gguf", (k, v) => k == "llama.attention.head_count_kv" ? GgufValue.Of(3u) : v));
        Assert.Contains("head count 8 is not a multiple of the KV head count 3", e.Message);
    }

    [Fact]
    public void MissingRequiredMetadataIsNamed()
    {
        using var g = GgufFile.Open(TestPaths.Fixture("llama-gqa.F32.gguf"));
        var w = new GgufWriter();
        foreach (var key in g.MetadataKeys)
            if (key != "llama.block_count") w.Add(key, g.Metadata[key]);
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        var e = LoadFails(path);
        Assert.Contains("'llama.block_count' is missing", e.Message);
    }

    [Fact]
    public void ACohere2FileWithoutItsWindowIsRefusedByName()
    {
        // cohere2's layers attend through a window three of every four: without its size the file cannot be read right.
        var source = ArchitectureVariants.Path(ArchitectureVariants.Cohere2F32);
        using var g = GgufFile.Open(source);
        var w = new GgufWriter();
        foreach (var key in g.MetadataKeys)
            if (key is not ("cohere2.attention.sliding_window" or "general.alignment")) w.Add(key, g.Metadata[key]);
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        Assert.Contains("'cohere2.attention.sliding_window' is missing", LoadFails(path).Message);
    }

    [Theory]
    [InlineData("factor", "'llama.rope.scaling.factor' is missing")]
    [InlineData("attn_factor", "'llama.rope.scaling.yarn_attn_factor' = 0.5 is not supported")]
    [InlineData("ext_factor", "'llama.rope.scaling.yarn_ext_factor' = -1 is not a finite number >= 0")]
    public void AYarnFileWhoseScalingCannotBeReadIsRefusedByName(string damage, string message)
    {
        // Without its factor a YaRN file's angles are unknown; a magnitude of a later llama.cpp's own is not guessed at.
        using var g = GgufFile.Open(ArchitectureVariants.Path(ArchitectureVariants.LlamaYarnF32));
        var w = new GgufWriter();
        foreach (var key in g.MetadataKeys)
            if (key is not "general.alignment" && !(damage == "factor" && key == "llama.rope.scaling.factor")) w.Add(key, g.Metadata[key]);
        if (damage == "attn_factor") w.Add("llama.rope.scaling.yarn_attn_factor", 0.5f);
        if (damage == "ext_factor") w.Add("llama.rope.scaling.yarn_ext_factor", -1f);
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        var e = LoadFails(path);
        Assert.IsType<ModelFormatException>(e);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void NonFiniteNormWeightsAreRejected()
    {
        var e = LoadFails(Rewrite("llama-gqa.F32.gguf", tensor: t =>
        {
            var data = new byte[t.ByteSize];
            if (t.Name == "output_norm.weight") BitConverter.TryWriteBytes(data.AsSpan(8), float.NaN);
            return (t.Type, t.Dimensions, data);
        }));
        Assert.Contains("'output_norm.weight' contains a non-finite value", e.Message);
    }

    [Fact]
    public void TruncatedLlama2cCheckpointIsReported()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-bad-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(TestPaths.Model("stories260K.bin"))[..500000]);
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => LlmModel.Load(path, new ModelLoadOptions { TokenizerPath = TestPaths.Model("tok512.bin") }));
            Assert.IsType<ModelFormatException>(e);
            Assert.Contains("truncated", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void PromptLongerThanTheContextIsRejectedBeforeAnyWork()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        using var session = model.CreateSession(new KvSharp.Engine.SessionOptions { ContextLength = 16 });
        var e = Assert.Throws<ContextOverflowException>(() => session.Generate(string.Concat(Enumerable.Repeat("Lily ran. ", 20))).ToList());
        Assert.Contains("exceed the context length of 16", e.Message);
        Assert.Empty(session.Tokens);
        var cache = model.CreateCache(KvCacheMode.Static, 4);
        Assert.Throws<ContextOverflowException>(() => model.Evaluate([1, 2, 3, 4, 5], cache));
        Assert.Equal(0, cache.Length);
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreRejected()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        var cache = model.CreateCache();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Evaluate([1, 512], cache));
        Assert.Contains("token id 512 at index 1", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Evaluate([-1], cache));
        Assert.Equal(0, cache.Length);
    }
}
