using System.Text;
using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

public class StreamingDetokenizerTests
{
    private static List<string> Stream(ITokenizer tok, int[] ids, bool skipLeadingSpace, out string flushed)
    {
        var detok = new StreamingDetokenizer(tok, skipLeadingSpace);
        var chunks = ids.Select(detok.Append).ToList();
        flushed = detok.Flush();
        return chunks;
    }

    // A chunk holds only whole characters: no lone surrogate and no replacement char (the inputs are valid text).
    private static void AssertWholeCharacters(string chunk)
    {
        Assert.DoesNotContain('\uFFFD', chunk);
        for (int i = 0; i < chunk.Length; i++)
        {
            if (char.IsHighSurrogate(chunk[i])) { Assert.True(i + 1 < chunk.Length && char.IsLowSurrogate(chunk[i + 1]), $"split surrogate pair in '{chunk}'"); i++; }
            else Assert.False(char.IsLowSurrogate(chunk[i]), $"lone low surrogate in '{chunk}'");
        }
    }

    [Fact]
    public void StoriesCasesStreamToTheSameTextAsDecode()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        foreach (var c in TokenizerFixtures.StoriesCases)
        {
            foreach (var ids in new[] { c.IdsBos, c.IdsNoSpecial })
            {
                var chunks = Stream(tok, ids, tok.StripsLeadingSpace, out string flushed);
                chunks.ForEach(AssertWholeCharacters);
                Assert.Equal("", flushed);
                Assert.Equal(tok.Decode(ids), string.Concat(chunks));
                Assert.Equal(c.Text, string.Concat(chunks));
            }
        }
    }

    [Theory]
    [InlineData("gpt-2")]
    [InlineData("llama-spm")]
    [InlineData("phi-3")]
    public void VocabCasesStreamToTheSameTextAsDecode(string name)
    {
        var tok = TokenizerFixtures.VocabGguf(name);
        foreach (var c in TokenizerFixtures.LoadVocabCases(name))
        {
            var chunks = Stream(tok, c.Ids, tok.StripsLeadingSpace, out string flushed);
            chunks.ForEach(AssertWholeCharacters);
            Assert.Equal("", flushed);
            Assert.Equal(tok.Decode(c.Ids), string.Concat(chunks));
        }
    }

    [Theory]
    [InlineData("Emoji: 😀🚀 ❤️")]
    [InlineData("你好世界")]
    [InlineData("日本語のテキスト")]
    public void MultiByteCharactersAreHeldBackUntilComplete(string text)
    {
        var tok = TokenizerFixtures.StoriesGguf;
        int[] ids = tok.Encode(text, addSpecial: true, parseSpecial: false);
        var chunks = Stream(tok, ids, skipLeadingSpace: true, out _);
        // These characters are byte-fallback tokens, so some appends must have returned nothing yet.
        Assert.Contains("", chunks.Skip(1));
        chunks.ForEach(AssertWholeCharacters);
        Assert.Equal(text, string.Concat(chunks));

        var gpt2 = TokenizerFixtures.VocabGguf("gpt-2");
        int[] bpeIds = gpt2.Encode(text, false, false);
        var bpeChunks = Stream(gpt2, bpeIds, skipLeadingSpace: false, out _);
        bpeChunks.ForEach(AssertWholeCharacters);
        Assert.Equal(text, string.Concat(bpeChunks));
    }

    [Fact]
    public void IncompleteCharacterFlushesAsReplacement()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        var detok = new StreamingDetokenizer(tok, skipLeadingSpace: false);
        Assert.Equal("", detok.Append(3 + 0xF0)); // first byte of a 4-byte sequence
        Assert.Equal("", detok.Append(3 + 0x9F));
        Assert.Equal("\uFFFD", detok.Flush());
        Assert.Equal("\uFFFD", tok.Decode([3 + 0xF0, 3 + 0x9F]));
    }

    [Fact]
    public void InvalidBytesBecomeReplacementLikeDecode()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        int[] ids = [3 + 0x80, 3 + 'A', 3 + 0xE4, 3 + 'B', 3 + 0xBD]; // stray continuation, truncated sequence, stray
        var detok = new StreamingDetokenizer(tok, skipLeadingSpace: false);
        string streamed = string.Concat(ids.Select(detok.Append)) + detok.Flush();
        Assert.Equal(tok.Decode(ids), streamed);
        Assert.Equal("\uFFFDA\uFFFDB\uFFFD", streamed);
    }

    [Fact]
    public void SkipLeadingSpaceStripsOnlyTheFirstPiece()
    {
        var tok = TokenizerFixtures.StoriesGguf;
        int[] ids = tok.Encode("Hello world", addSpecial: true, parseSpecial: false);
        var chunks = Stream(tok, ids, skipLeadingSpace: true, out _);
        Assert.Equal("Hello world", string.Concat(chunks));
        var raw = Stream(tok, ids, skipLeadingSpace: false, out _);
        Assert.Equal(" Hello world", string.Concat(raw));
    }

    [Fact]
    public void AppendRejectsIdsOutsideTheVocabulary()
    {
        var detok = new StreamingDetokenizer(TokenizerFixtures.StoriesGguf, true);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => detok.Append(512));
        Assert.Equal(512, ex.ActualValue);
    }

    [Fact]
    public void DecodeIsUtf8OfTheConcatenatedPieces()
    {
        var tok = TokenizerFixtures.VocabGguf("gpt-2");
        int[] ids = tok.Encode("naïve café 😀", false, false);
        var bytes = ids.SelectMany(tok.TokenBytes).ToArray();
        Assert.Equal(Encoding.UTF8.GetString(bytes), tok.Decode(ids));
    }
}
