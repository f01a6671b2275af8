using KvSharp.Llama2c;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

public class Stories260KTokenizerTests
{
    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < TokenizerFixtures.StoriesCases.Length; i++) data.Add(i);
        return data;
    }

    private static readonly Lazy<ITokenizer> Llama2c = new(() =>
        TokenizerFactory.Create(Llama2cTokenizerReader.Read(TestPaths.Model("tok512.bin"), 512)));

    [Fact]
    public void FixtureHas34Cases() => Assert.Equal(34, TokenizerFixtures.StoriesCases.Length);

    [Fact]
    public void MetadataDefaultsMatchLlamaCpp()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        Assert.IsType<SentencePieceTokenizer>(tok);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.True(tok.AddBos);
        Assert.True(tok.StripsLeadingSpace);
        Assert.True(tok.IsEndOfGeneration(2));
        Assert.False(tok.IsEndOfGeneration(1));
        Assert.Equal(-1, ((TokenizerBase)tok).Data.PadId); // 0xFFFFFFFF in the file = none
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EncodesLikeLlamaCpp(int index)
    {
        var c = TokenizerFixtures.StoriesCases[index];
        var tok = TokenizerFixtures.StoriesGguf;
        Assert.Equal(c.IdsNoSpecial, tok.Encode(c.Text, addSpecial: false, parseSpecial: false));
        Assert.Equal(c.IdsBos, tok.Encode(c.Text, addSpecial: true, parseSpecial: false));
        Assert.Equal(c.IdsBosParseSpecial, tok.Encode(c.Text, addSpecial: true, parseSpecial: true));
    }

    // Decode rule: control tokens (BOS) give no text and the dummy-prefix space of the first piece with
    // bytes is dropped, so Decode(Encode(text)) == text with or without BOS.
    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodesBackToTheText(int index)
    {
        var c = TokenizerFixtures.StoriesCases[index];
        var tok = TokenizerFixtures.StoriesGguf;
        Assert.Equal(c.Text, tok.Decode(c.IdsNoSpecial));
        Assert.Equal(c.Text, tok.Decode(c.IdsBos));
        // With special parsing, "<s>" etc. became control ids that decode to nothing: only compare when none did.
        if (c.IdsBosParseSpecial.AsSpan().SequenceEqual(c.IdsBos))
            Assert.Equal(c.Text, tok.Decode(c.IdsBosParseSpecial));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Llama2cTokenizerBinGivesTheSameIds(int index)
    {
        var c = TokenizerFixtures.StoriesCases[index];
        Assert.Equal(c.IdsBos, Llama2c.Value.Encode(c.Text, addSpecial: true, parseSpecial: false));
        Assert.Equal(c.IdsNoSpecial, Llama2c.Value.Encode(c.Text, addSpecial: false, parseSpecial: false));
        Assert.Equal(c.Text, Llama2c.Value.Decode(c.IdsBos));
    }

    [Fact]
    public void ZooPromptMatchesRunC()
    {
        int[] expected = [1, 410, 469, 347];
        Assert.Equal(expected, Llama2c.Value.Encode("Zoo", addSpecial: true, parseSpecial: false));
        Assert.Equal(expected, TokenizerFixtures.StoriesGguf.Encode("Zoo", addSpecial: true, parseSpecial: false));
    }

    [Fact]
    public void Llama2cVocabularyMatchesTheGgufVocabulary()
    {
        var bin = (TokenizerBase)Llama2c.Value;
        var gguf = (TokenizerBase)TokenizerFixtures.StoriesGguf;
        for (int id = 0; id < 512; id++)
        {
            Assert.Equal(gguf.TokenText(id), bin.TokenText(id));
            Assert.Equal(gguf.GetTokenType(id), bin.GetTokenType(id));
            Assert.Equal(gguf.TokenBytes(id), bin.TokenBytes(id));
        }
    }

    [Fact]
    public void ByteTokensDecodeToTheirByte()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        Assert.Equal(new byte[] { 0x00 }, tok.TokenBytes(3));
        Assert.Equal(new byte[] { 0xE4 }, tok.TokenBytes(3 + 0xE4));
        Assert.Equal(new byte[] { (byte)' ' }, tok.TokenBytes(410)); // "▁"
        Assert.Empty(tok.TokenBytes(1));
        Assert.Equal("<s>"u8.ToArray(), tok.TokenPiece(1, renderSpecial: true).ToArray());
    }

    [Fact]
    public void GoldenPromptFromTheFixturesReadme()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        int[] ids = File.ReadAllText(TestPaths.Fixture("prompt.ids.txt")).Split((char[])['\n', ' ', '\r'], StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        const string prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, she saw a big red ball in the park and ran to get it. Her mom smiled and said, be careful!";
        int[] all = tok.Encode(prompt, addSpecial: true, parseSpecial: true);
        Assert.Equal(77, all.Length);
        Assert.Equal(ids, all[..64]);
    }

    [Fact]
    public void RenderSpecialShowsControlTokens()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        int[] ids = tok.Encode("<s>Hi</s>", addSpecial: false, parseSpecial: true);
        Assert.Equal(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal(tok.Encode("Hi", false, false), ids[1..^1]); // dummy prefix again after a special token
        // The first piece with bytes is "<s>" when specials are rendered, so the space before "Hi" stays.
        Assert.Equal("<s> Hi</s>", tok.Decode(ids, renderSpecial: true));
        Assert.Equal("Hi", tok.Decode(ids));
    }
}
