using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

/// <summary>llama.cpp's test-tokenizer-0 vectors: addSpecial=false, parseSpecial=false.</summary>
public class VocabFixtureTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in new[] { "llama-spm", "phi-3", "gpt-2" })
            for (int i = 0; i < TokenizerFixtures.LoadVocabCases(name).Length; i++) data.Add(name, i);
        return data;
    }

    [Theory]
    [InlineData("llama-spm")]
    [InlineData("phi-3")]
    [InlineData("gpt-2")]
    public void EachVocabularyHas46Cases(string name) => Assert.Equal(46, TokenizerFixtures.LoadVocabCases(name).Length);

    [Theory]
    [MemberData(nameof(Cases))]
    public void EncodesLikeLlamaCpp(string name, int index)
    {
        var c = TokenizerFixtures.LoadVocabCases(name)[index];
        Assert.Equal(c.Ids, TokenizerFixtures.VocabGguf(name).Encode(c.Text, addSpecial: false, parseSpecial: false));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodesBackToTheInput(string name, int index)
    {
        var c = TokenizerFixtures.LoadVocabCases(name)[index];
        Assert.Equal(c.Text, TokenizerFixtures.VocabGguf(name).Decode(c.Ids));
    }

    [Fact]
    public void VocabularyKindsAndDefaults()
    {
        var spm = TokenizerFixtures.VocabGguf("llama-spm");
        Assert.IsType<SentencePieceTokenizer>(spm);
        Assert.True(spm.AddBos);
        var gpt2 = Assert.IsType<BytePairTokenizer>(TokenizerFixtures.VocabGguf("gpt-2"));
        Assert.Equal("gpt2", gpt2.PreTokenizer.Kind);
        Assert.False(gpt2.AddBos);
        Assert.False(gpt2.StripsLeadingSpace);
        int eot = gpt2.TokenId("<|endoftext|>");
        Assert.True(eot >= 0);
        Assert.True(gpt2.IsEndOfGeneration(eot));
    }

    [Fact]
    public void Gpt2ParsesEndOfTextOnlyWhenAsked()
    {
        var tok = (TokenizerBase)TokenizerFixtures.VocabGguf("gpt-2");
        int eot = tok.TokenId("<|endoftext|>");
        int[] parsed = tok.Encode("Hello<|endoftext|> world", addSpecial: false, parseSpecial: true);
        Assert.Contains(eot, parsed);
        Assert.Equal(tok.Encode("Hello", false, false).Concat([eot]).Concat(tok.Encode(" world", false, false)), parsed);
        int[] plain = tok.Encode("Hello<|endoftext|> world", addSpecial: false, parseSpecial: false);
        Assert.DoesNotContain(eot, plain);
        Assert.Equal("Hello<|endoftext|> world", tok.Decode(plain));
    }
}
