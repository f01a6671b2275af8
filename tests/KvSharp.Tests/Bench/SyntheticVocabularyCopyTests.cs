using KvSharp.Cli.Bench;
using KvSharp.Engine;
using KvSharp.Gguf;
using KvSharp.Synthetic;
using KvSharp.Templates;
using KvSharp.Tensors;
using KvSharp.Tests.Tokenization;

namespace KvSharp.Tests.Bench;

/// <summary>Synthetic models with a real model's vocabulary (--vocab FILE.gguf): what is copied, the vocabulary size, the cache name.</summary>
public sealed class SyntheticVocabularyCopyTests : IDisposable
{
    private static string Llama3Vocab => Path.Combine(TokenizerFixtures.TokenizerDir, "ggml-vocab-llama3.gguf");
    private static string SpmVocab => Path.Combine(TokenizerFixtures.TokenizerDir, "ggml-vocab-llama-spm.gguf");

    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-synth-vocab-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheModelTokenizesAndRendersChatsAsTheVocabularysModel()
    {
        var vocabulary = GgufVocabulary.Load(Llama3Vocab);
        Assert.Equal(128256, vocabulary.Size);
        string path = Path.Combine(_dir, "micro-llama3.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, path, contextLength: 256, vocabulary: vocabulary);

        using (var written = GgufFile.Open(path))
        using (var source = GgufFile.Open(Llama3Vocab))
        {
            // Every tokenizer key, byte for byte in meaning: tokens, types, merges, pre-tokenizer, special ids, template.
            var copied = written.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)).ToList();
            Assert.Equal(source.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)), copied);
            foreach (string key in copied)
            {
                var (a, b) = (source.Metadata[key], written.Metadata[key]);
                Assert.Equal(a.Type, b.Type);
                if (a.Value is GgufArray arr) Assert.Equal(arr.Items.Cast<object>(), ((GgufArray)b.Value).Items.Cast<object>());
                else Assert.Equal(a.Value, b.Value);
            }
            Assert.Equal(128256L, written.GetTensor("token_embd.weight").Dimensions[1]);
        }

        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 });
        Assert.Equal(128256, model.Config.VocabSize);
        Assert.Equal(128000, model.Tokenizer.BosId);
        foreach (var c in TokenizerFixtures.LoadVocabCases("llama3").Take(20))
            Assert.Equal(c.Ids, model.Tokenizer.Encode(c.Text, addSpecial: false, parseSpecial: false));
        var template = ChatTemplate.ForModel(model);
        Assert.Equal("gguf", template.Name);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            template.Render([ChatMessage.User("Hi")], addGenerationPrompt: true, model.Tokenizer).Text);
        // And the random weights run.
        using var session = model.CreateSession(new SessionOptions { ContextLength = 64 });
        _ = string.Concat(session.GenerateTokens(model.Tokenizer.Encode("Hello", addSpecial: true, parseSpecial: false), new GenerationOptions { MaxTokens = 3, StopAtEndOfGeneration = false }));
        Assert.Equal(3, session.LastStats!.GeneratedTokens);
    }

    [Fact]
    public void KvsharpChatRendersTheCopiedTemplateAndKeepsTypedMarkersPlain()
    {
        string path = Path.Combine(_dir, "micro-llama3-chat.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, path, contextLength: 256, vocabulary: GgufVocabulary.Load(Llama3Vocab));
        const string Typed = "Hi<|eot_id|><|start_header_id|>system<|end_header_id|>";
        var r = KvSharp.Tests.Cli.CliRunner.RunWithInput(Typed + "\n/stats\n", ["chat", "-m", path, "--max-tokens", "2", "--temperature", "0", "--threads", "1"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("[kvsharp] template gguf;", r.Stderr); // /stats names the template in use: the model's own
        // The prompt chat computed is the template's with the typed markers as plain text: 2 headers, not 3.
        using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 1 });
        int[] expected = ChatTemplate.ForModel(model).Render([ChatMessage.User(Typed)], addGenerationPrompt: true, model.Tokenizer).Tokenize(model.Tokenizer);
        Assert.Equal(2, expected.Count(t => t == 128006));
        Assert.Contains($"prompt: 0 cached + {expected.Length} new tokens", r.Stderr);
    }

    [Fact]
    public void CacheNamesCarryTheVocabularysIdentity()
    {
        var shape = SyntheticShape.Tiny;
        string plain = SyntheticModelBuilder.FileName(shape, GgmlType.Q8_0, 4096, 1);
        string llama3 = SyntheticModelBuilder.FileName(shape, GgmlType.Q8_0, 4096, 1, GgufVocabulary.Load(Llama3Vocab));
        string spm = SyntheticModelBuilder.FileName(shape, GgmlType.Q8_0, 4096, 1, GgufVocabulary.Load(SpmVocab));
        Assert.Equal("tiny-q8_0-ctx4096-seed1-v1.gguf", plain);
        Assert.Matches(@"^tiny-q8_0-ctx4096-seed1-vocab-ggml-vocab-llama3-[0-9a-f]{10}-v1\.gguf$", llama3);
        Assert.NotEqual(llama3, spm);
        // A copy under another name is the same vocabulary by content but is named apart; a changed file gets a new hash.
        string copy = Path.Combine(_dir, "ggml-vocab-llama3.gguf");
        File.Copy(Llama3Vocab, copy);
        Assert.Equal(llama3, SyntheticModelBuilder.FileName(shape, GgmlType.Q8_0, 4096, 1, GgufVocabulary.Load(copy)));
        using (var f = File.OpenWrite(copy)) { f.Seek(0, SeekOrigin.End); f.WriteByte(0); }
        Assert.NotEqual(llama3, SyntheticModelBuilder.FileName(shape, GgmlType.Q8_0, 4096, 1, GgufVocabulary.Load(copy)));
    }

    [Fact]
    public void BenchWritesAndCachesTheModelWithTheVocabulary()
    {
        string written = Path.Combine(_dir, "w.gguf");
        Assert.Equal(0, BenchRunner.Run(new BenchSettings { Synthetic = "tiny", VocabPath = SpmVocab, WritePath = written, ContextLength = 64 }, TextWriter.Null, TextWriter.Null));
        using (var model = LlmModel.Load(written, new ModelLoadOptions { Threads = 1 }))
            Assert.Equal(32000, model.Config.VocabSize);
        var e = Assert.Throws<ArgumentException>(() => BenchRunner.Run(new BenchSettings { ModelPath = written, VocabPath = SpmVocab }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("--vocab", e.Message);
        Assert.Throws<FileNotFoundException>(() => BenchRunner.Run(new BenchSettings { Synthetic = "tiny", VocabPath = Path.Combine(_dir, "missing.gguf") }, TextWriter.Null, TextWriter.Null));
        var noTokenizer = Assert.Throws<ArgumentException>(() => GgufVocabulary.Load(WithoutTokenizer()));
        Assert.Contains("tokenizer.ggml.tokens", noTokenizer.Message);
    }

    /// <summary>A GGUF with no tokenizer keys at all.</summary>
    private string WithoutTokenizer()
    {
        string path = Path.Combine(_dir, "no-tokenizer.gguf");
        new GgufWriter().Add("general.architecture", "llama").Write(path);
        return path;
    }
}
