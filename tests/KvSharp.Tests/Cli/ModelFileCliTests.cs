using KvSharp.Cli;
using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Models;

namespace KvSharp.Tests.Cli;

/// <summary>`inspect` and `tokenize` on model files: sizes computed not allocated, metadata checked first, vocabulary read from the file.</summary>
public class ModelFileCliTests
{
    private static readonly string Stories = TestPaths.Model("stories260K.gguf");
    private static readonly string Tok512 = TestPaths.Model("tok512.bin");

    private static string Inspect(string path)
    {
        var o = new StringWriter();
        InspectCommand.Inspect(path, null, false, o);
        return o.ToString();
    }

    /// <summary>Inspects a temporary rewrite of stories260K.gguf, then deletes it (only it: never a fixture).</summary>
    private static string InspectRewrite(Func<string, GgufValue, GgufValue> metadata)
    {
        string path = GgufRewrite.Rewrite(Stories, metadata);
        try { return Inspect(path); }
        finally { File.Delete(path); }
    }

    [Fact]
    public void InspectSizesAHugeContextArithmetically()
    {
        string report = InspectRewrite((k, v) => k == "llama.context_length" ? GgufValue.Of(1u << 28) : v);
        // 1,280 bytes per token x 2^28 tokens: 320 GiB, reported, not allocated.
        Assert.Contains($"full context of {1 << 28}: {1280L << 28:N0} bytes", report);
        Assert.Contains($"static {1280L << 28:N0} bytes up front", report);
    }

    [Theory]
    [InlineData("llama.block_count", 65541u, "metadata says 65541 blocks but tensor 'blk.65540.attn_norm.weight' is missing")]
    [InlineData("llama.embedding_length", 1u << 30, "'token_embd.weight' has shape [64, 512], expected [1073741824, 512] from the metadata")]
    [InlineData("llama.feed_forward_length", 2000000000u, "'blk.0.ffn_gate.weight' has shape [64, 172], expected [64, 2000000000] from the metadata")]
    public void InspectChecksTheMetadataAgainstTheTensorsBeforeSizing(string key, uint value, string message)
    {
        var e = Assert.IsType<ModelFormatException>(Record.Exception(() => InspectRewrite((k, v) => k == key ? GgufValue.Of(value) : v)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void InspectReadsALlama2cHeaderWithoutTheWeights()
    {
        string report = Inspect(TestPaths.Model("stories260K.bin"));
        Assert.Contains("(llama2.c checkpoint)", report);
        Assert.Contains("per token: 2 x 5 x 4 x 8 x 4 (F32) = 1,280 bytes", report);
    }

    [Fact]
    public void TokenizerBinSaysItsOwnVocabularySize()
    {
        Assert.Equal(512, Llama2cTokenizerReader.Read(Tok512).Tokens.Length);
        var e = Assert.Throws<InvalidDataException>(() => Llama2cTokenizerReader.Read(Tok512, 500));
        Assert.Contains("holds 512 tokens but the vocabulary size is 500", e.Message);
    }

    [Fact]
    public void TokenizeInfersTheVocabularySizeAndChecksAGivenOne()
    {
        var r = CliRunner.Run("tokenize", "--tokenizer", Tok512, "--text", "Zoo");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("1 410 469 347", r.Stdout.Trim());
        var bad = CliRunner.Run("tokenize", "--tokenizer", Tok512, "--vocab-size", "32000", "--text", "Zoo");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("holds 512 tokens but the vocabulary size is 32000", bad.Stderr);
    }

    [Fact]
    public void DirectoryAsModelIsCalledADirectory()
    {
        var r = CliRunner.Run("inspect", TestPaths.Models);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"error: {TestPaths.Models} is a directory, not a model file (give the file inside it)", r.Stderr.Trim());
    }
}
