using KvSharp.Gguf;
using KvSharp.Llama2c;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

public class TokenizerMetadataTests
{
    private static Dictionary<string, GgufValue> SpmMetadata() => new()
    {
        ["tokenizer.ggml.model"] = GgufValue.Of("llama"),
        ["tokenizer.ggml.tokens"] = GgufValue.Of(["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab"]),
        ["tokenizer.ggml.scores"] = GgufValue.Of(new float[] { 0, 0, 0, -1, -2, -3, -0.5f, -0.7f }),
        ["tokenizer.ggml.token_type"] = GgufValue.Of(new[] { 2, 3, 3, 1, 1, 1, 1, 1 }),
    };

    private static Dictionary<string, GgufValue> BpeMetadata(string pre)
    {
        // All 256 byte characters plus "ab" and "abc"; only the merge "a b" exists.
        var tokens = Enumerable.Range(0, 256).Select(b => Gpt2ByteMap.Encode((byte)b).ToString()).Concat(["ab", "abc", "<|endoftext|>"]).ToArray();
        var types = Enumerable.Repeat(1, tokens.Length).ToArray();
        types[^1] = 3;
        return new()
        {
            ["tokenizer.ggml.model"] = GgufValue.Of("gpt2"),
            ["tokenizer.ggml.pre"] = GgufValue.Of(pre),
            ["tokenizer.ggml.tokens"] = GgufValue.Of(tokens),
            ["tokenizer.ggml.token_type"] = GgufValue.Of(types),
            ["tokenizer.ggml.merges"] = GgufValue.Of(["a b"]),
            ["tokenizer.ggml.eos_token_id"] = GgufValue.Of(258u),
        };
    }

    private static T Fails<T>(Dictionary<string, GgufValue> md, params string[] mentions) where T : Exception
    {
        var ex = Assert.ThrowsAny<T>(() => TokenizerFactory.FromMetadata(md, "test.gguf"));
        foreach (var m in mentions) Assert.Contains(m, ex.Message);
        return ex;
    }

    [Fact]
    public void SmallSpmVocabularyEncodesWithScoresAndDefaults()
    {
        var tok = TokenizerFactory.FromMetadata(SpmMetadata());
        Assert.True(tok.AddBos);
        // "▁a" (-0.5) beats "ab" (-0.7): " ab" -> ▁▁ab -> [▁][▁a][b]
        Assert.Equal([1, 3, 6, 5], tok.Encode(" ab", addSpecial: true, parseSpecial: false));
        // No byte tokens: an unknown character becomes <unk>.
        Assert.Equal([6, 0], tok.Encode("az", addSpecial: false, parseSpecial: false));
    }

    [Fact]
    public void IgnoreMergesTakesWholeWordTokensForLlama3()
    {
        var llama3 = TokenizerFactory.FromMetadata(BpeMetadata("llama-bpe"));
        var gpt2 = TokenizerFactory.FromMetadata(BpeMetadata("gpt-2"));
        Assert.Equal([257], llama3.Encode("abc", false, false));     // "abc" is a token: taken whole
        Assert.Equal([256, 'c'], gpt2.Encode("abc", false, false)); // merges only make "ab"
        Assert.True(llama3.AddBos);   // llama.cpp turns add_bos on for llama3-style vocabularies
        Assert.Equal(11, llama3.BosId); // gpt2-model default when the metadata names no BOS
        Assert.False(gpt2.AddBos);
        Assert.True(gpt2.IsEndOfGeneration(258));
        Assert.Equal([256, 258, 'c'], gpt2.Encode("ab<|endoftext|>c", false, parseSpecial: true));
    }

    [Fact]
    public void MissingModelIsNamed()
    {
        var md = SpmMetadata();
        md.Remove("tokenizer.ggml.model");
        Fails<InvalidDataException>(md, "tokenizer.ggml.model", "test.gguf");
    }

    [Fact]
    public void UnsupportedModelIsNamed()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.model"] = GgufValue.Of("bert");
        Fails<NotSupportedException>(md, "tokenizer.ggml.model", "'bert'");
    }

    [Fact]
    public void ScoreCountMismatchIsNamed()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.scores"] = GgufValue.Of(new float[] { 0, 0 });
        Fails<InvalidDataException>(md, "tokenizer.ggml.scores", "2", "8");
    }

    [Fact]
    public void TokenTypeCountAndValuesAreChecked()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.token_type"] = GgufValue.Of(new[] { 1, 1 });
        Fails<InvalidDataException>(md, "tokenizer.ggml.token_type");
        md["tokenizer.ggml.token_type"] = GgufValue.Of(new[] { 2, 3, 3, 1, 42, 1, 1, 1 });
        Fails<InvalidDataException>(md, "tokenizer.ggml.token_type[4] = 42");
    }

    [Fact]
    public void SpecialIdOutOfRangeIsNamed()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.bos_token_id"] = GgufValue.Of(9999u);
        Fails<InvalidDataException>(md, "tokenizer.ggml.bos_token_id", "9999");
    }

    [Fact]
    public void AllOnesIdMeansNone()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.padding_token_id"] = GgufValue.Of(uint.MaxValue);
        var tok = (TokenizerBase)TokenizerFactory.FromMetadata(md);
        Assert.Equal(-1, tok.Data.PadId);
    }

    [Fact]
    public void WrongTypesAreNamed()
    {
        var md = SpmMetadata();
        md["tokenizer.ggml.tokens"] = GgufValue.Of("not an array");
        Fails<InvalidDataException>(md, "tokenizer.ggml.tokens", "array of strings");
        md = SpmMetadata();
        md["tokenizer.ggml.add_bos_token"] = GgufValue.Of("yes");
        Fails<InvalidDataException>(md, "tokenizer.ggml.add_bos_token");
    }

    [Fact]
    public void Gpt2NeedsMerges()
    {
        var md = BpeMetadata("gpt-2");
        md.Remove("tokenizer.ggml.merges");
        Fails<InvalidDataException>(md, "tokenizer.ggml.merges");
        md["tokenizer.ggml.merges"] = GgufValue.Of(["nospace"]);
        Fails<InvalidDataException>(md, "tokenizer.ggml.merges[0]", "nospace");
    }

    [Fact]
    public void AddBosWithoutBosIsAnError()
    {
        var data = new TokenizerData("llama", null, ["<unk>", "a"], null, null, null,
            BosId: -1, EosId: -1, UnkId: 0, PadId: -1, AddBos: true, AddEos: false, AddSpacePrefix: true, EogIds: []);
        var ex = Assert.Throws<InvalidDataException>(() => TokenizerFactory.Create(data));
        Assert.Contains("tokenizer.ggml.add_bos_token", ex.Message);
        Assert.Contains("tokenizer.ggml.bos_token_id", ex.Message);
    }

    [Fact]
    public void DecodeRejectsIdsOutOfRange()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([1, 600]));
        Assert.Equal(600, ex.ActualValue);
        Assert.Contains("600", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([-1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.TokenBytes(512));
    }

    [Fact]
    public void TruncatedTokenizerBinIsReported()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-tok-{Guid.NewGuid():N}.bin");
        try
        {
            byte[] full = File.ReadAllBytes(TestPaths.Model("tok512.bin"));
            File.WriteAllBytes(path, full[..100]);
            var ex = Assert.Throws<InvalidDataException>(() => Llama2cTokenizerReader.Read(path, 512));
            Assert.Contains(path, ex.Message);
            Assert.Contains("token", ex.Message);
            File.WriteAllBytes(path, full);
            Assert.Throws<InvalidDataException>(() => Llama2cTokenizerReader.Read(path, 513)); // more tokens than the file has
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void EncodesLongTextAndRoundTrips()
    {
        // Not a timing test: a large input exercises the priority-queue merge loops end to end.
        string paragraph = string.Concat(TokenizerFixtures.StoriesCases.Select(c => c.Text + "\n"));
        string text = string.Concat(Enumerable.Repeat(paragraph, 20)); // ~30 KB
        foreach (var tok in new[] { TokenizerFixtures.StoriesGguf, TokenizerFixtures.VocabGguf("llama-spm"), TokenizerFixtures.VocabGguf("gpt-2") })
        {
            int[] ids = tok.Encode(text, addSpecial: false, parseSpecial: false);
            Assert.Equal(text, tok.Decode(ids));
        }
        string noSpaces = new('a', 20000);
        Assert.Equal(noSpaces, TokenizerFixtures.StoriesGguf.Decode(TokenizerFixtures.StoriesGguf.Encode(noSpaces, false, false)));
    }
}
