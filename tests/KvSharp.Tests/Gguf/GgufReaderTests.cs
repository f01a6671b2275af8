using System.Text.Json;
using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests.Gguf;

public class GgufReaderTests
{
    public static TheoryData<string> FixtureModels()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TestPaths.Fixtures, "*.gguf").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureModels))]
    public void ReadsEveryFixtureMatchingTheManifest(string file)
    {
        using var gguf = GgufFile.Open(TestPaths.Fixture(file));
        using var manifest = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("manifest.json")));
        var entry = manifest.RootElement.GetProperty("models").EnumerateArray()
            .First(m => m.GetProperty("gguf").GetProperty("file").GetString() == file);
        Assert.Equal(entry.GetProperty("gguf").GetProperty("gguf_version").GetUInt32(), gguf.Version);
        var tensors = entry.GetProperty("tensors");
        Assert.Equal(tensors.EnumerateObject().Count(), gguf.Tensors.Count);
        foreach (var t in tensors.EnumerateObject())
        {
            var info = gguf.GetTensor(t.Name);
            Assert.Equal(t.Value.GetProperty("type").GetString(), info.Type.ToString());
            Assert.Equal(t.Value.GetProperty("ne").EnumerateArray().Select(e => e.GetInt64()), info.Dimensions);
        }
        Assert.True(gguf.TryGetString("general.architecture", out var arch));
        Assert.Equal(entry.GetProperty("dims").GetProperty("arch").GetString(), arch);
        Assert.Equal(512, gguf.GetStringArray("tokenizer.ggml.tokens")!.Length);
    }

    [Fact]
    public void VocabOnlyFileHasMetadataAndNoTensors()
    {
        using var gguf = GgufFile.Open(TestPaths.Fixture("tokenizer/ggml-vocab-gpt-2.gguf"));
        Assert.Empty(gguf.Tensors);
        Assert.Equal("gpt2", gguf.GetStringOrNull("tokenizer.ggml.model"));
        Assert.NotEmpty(gguf.GetStringArray("tokenizer.ggml.merges")!);
    }

    [Fact]
    public void TensorDataIsMappedNotCopied()
    {
        using var gguf = GgufFile.Open(TestPaths.Model("stories260K.gguf"));
        var norm = gguf.GetTensor("output_norm.weight");
        Assert.Equal(GgmlType.F32, norm.Type);
        var bytes = gguf.GetTensorBytes(norm);
        Assert.Equal(64 * 4, bytes.Length);
        // RMSNorm weights of a trained model are positive and O(1).
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes);
        Assert.All(floats.ToArray(), f => Assert.InRange(f, 0.01f, 20f));
    }

    [Fact]
    public void MissingFileNamesThePath()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => GgufFile.Open("/nonexistent/model.gguf"));
        Assert.Contains("/nonexistent/model.gguf", ex.Message);
    }
}
