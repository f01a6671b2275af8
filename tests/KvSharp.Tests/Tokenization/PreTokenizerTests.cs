using KvSharp.Tokenization;

namespace KvSharp.Tests.Tokenization;

public class PreTokenizerTests
{
    private static string[] Split(string pre, string text)
    {
        var words = new List<(int Start, int Length)>();
        PreTokenizer.ForName(pre).Split(text, words);
        Assert.Equal(text, string.Concat(words.Select(w => text.Substring(w.Start, w.Length)))); // nothing lost
        return words.Select(w => text.Substring(w.Start, w.Length)).ToArray();
    }

    private const string Sample = "Hello world's 12345 !!\n\n  x";

    [Fact]
    public void Gpt2Regex() =>
        Assert.Equal(["Hello", " world", "'s", " 12345", " !!", "\n\n ", " x"], Split("gpt-2", Sample));

    [Fact]
    public void Llama3RegexGroupsDigitsByThreeAndKeepsNewlinesAfterPunctuation() =>
        Assert.Equal(["Hello", " world", "'s", " ", "123", "45", " !!\n\n", " ", " x"], Split("llama-bpe", Sample));

    [Fact]
    public void Qwen2RegexSplitsEveryDigit() =>
        Assert.Equal(["Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " !!\n\n", " ", " x"], Split("qwen2", Sample));

    [Fact]
    public void Llama3ContractionsAreCaseInsensitive() =>
        Assert.Equal(["I", "'M", " fine", "'S"], Split("llama3", "I'M fine'S"));

    [Fact]
    public void StarcoderSplitsDigitsFirst() =>
        Assert.Equal(["a", " ", "1", "2", " b"], Split("smollm", "a 12 b"));

    [Fact]
    public void DefaultSetSplitsPunctuationRunsThenWordsThenDigitTriples() =>
        Assert.Equal(["Hi", "!!", " there", "123", "4"], Split("default", "Hi!! there1234"));

    [Fact]
    public void CharactersOutsideTheBmpCountAsOneCodePoint()
    {
        // llama.cpp sees "😀" as one non-letter code point, so llama3's [^\r\n\p{L}\p{N}]?\p{L}+ takes it with the word.
        Assert.Equal(["😀abc"], Split("llama3", "😀abc"));
        // U+1D400 MATHEMATICAL BOLD CAPITAL A is a letter: the word is not broken around it.
        Assert.Equal(["a\U0001D400b", " c"], Split("gpt-2", "a\U0001D400b c"));
        Assert.Equal(["x", " 😀😀", " y"], Split("gpt-2", "x 😀😀 y"));
    }

    /// <summary>
    /// The pre-tokenizers of newer vocabularies (Mistral's tekken, Phi-4-mini's gpt-4o, DeepSeek's, ...): each sample's
    /// pieces are what llama.cpp's unicode_regex_split gives for the same regexes (run outside the repo); superbpe's empty
    /// pieces, which hold no tokens, left out.
    /// </summary>
    [Theory]
    [InlineData("tekken", "Hello World123 DEEPseek's café/x\n\n  y", "Hello| World|1|2|3| DEEPseek|'s| café|/x|\n\n| | y")]
    [InlineData("gpt-4o", "Hello World's 12345 DEEPseek'S ok\n x", "Hello| World's| |123|45| DEEPseek'S| ok|\n| x")]
    [InlineData("llama4", "Hello World's 12345 DEEPseek'S ok\n x", "Hello| World's| |123|45| DEEPseek'S| ok|\n| x")]
    [InlineData("deepseek-llm", "Hello, 世界 123 éclair\n  x  ", "Hello|,| |世界| |123| é|clair|\n| | x|  ")]
    [InlineData("deepseek-v3", "Hello,world 12345 日本語 x\n\ny", "Hello|,world| |123|45| |日本語| x|\n\n|y")]
    [InlineData("viking", "Hei, maailma 123!", "Hei|,| maailma| |1|2|3|!")]
    [InlineData("chameleon", "a 12 <sentinel:3> b.c  d", "a| |1|2| |<|sentinel|:|3|>| b|.|c|  |d")]
    [InlineData("superbpe", "x 1234567 y 12", "x |1|234|567| y |12")]
    [InlineData("bailingmoe", "It's 12 ok\n\nx", "It|'s| |1|2| ok|\n\n|x")]
    [InlineData("seed-coder", "I'M 12 ok\n\nx", "I|'M| |1|2| ok|\n\n|x")]
    public void NewerPreTokenizersSplitAsLlamaCppDoes(string pre, string text, string pieces)
    {
        string Unescape(string s) => s.Replace("\\n", "\n");
        Assert.Equal(Unescape(pieces).Split('|'), Split(pre, Unescape(text)));
        Assert.NotEqual("gpt2", PreTokenizer.ForName(pre).Kind);
    }

    [Fact]
    public void TekkenTakesWholeWordsAndAddsBos() =>
        Assert.Equal((true, true), (PreTokenizer.ForName("tekken").IgnoreMerges, PreTokenizer.ForName("tekken").AddBosByDefault));

    [Fact]
    public void UnknownNamesFallBackToGpt2()
    {
        var p = PreTokenizer.ForName("some-future-model");
        Assert.Equal("gpt2", p.Kind);
        Assert.True(PreTokenizer.ForName("llama-bpe").IgnoreMerges);
        Assert.True(PreTokenizer.ForName("llama-bpe").AddBosByDefault);
        Assert.False(PreTokenizer.ForName("qwen2").AddBosByDefault);
    }

    [Fact]
    public void RegexWhitespaceIsLlamaCppsWhitespaceSet()
    {
        // The patterns rely on .NET's \s being exactly llama.cpp's whitespace flag set (unicode-data.cpp).
        var expected = new HashSet<int> { 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };
        for (int c = 0x2000; c <= 0x200A; c++) expected.Add(c);
        var space = new System.Text.RegularExpressions.Regex(@"^\s$");
        for (int c = 0; c < 0x10000; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            Assert.True(expected.Contains(c) == space.IsMatch(((char)c).ToString()), $"U+{c:X4}");
        }
    }
}
