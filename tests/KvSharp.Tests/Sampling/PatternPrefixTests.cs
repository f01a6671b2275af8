using System.Text.RegularExpressions;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// PatternPrefix matches what .NET's ECMAScript regex matches (on texts where ECMA-262 and .NET agree), says a text
/// is viable exactly when some continuation matches, reads code points, and refuses by name what a finite automaton
/// cannot hold.
/// </summary>
public class PatternPrefixTests
{
    private const string Path = "schema.properties.code.pattern";

    private static PatternPrefix Parse(string pattern) => PatternPrefix.Parse(pattern, Path);

    /// <summary>Patterns with texts that match them, from which the texts compared are grown.</summary>
    public static TheoryData<string, string[]> PatternsWithMatches => new()
    {
        { @"^-?(\d+\.)?\d{2}:\d{2}:\d{2}(\.\d{1,7})?$", ["12:34:56", "-1.02:03:04.1234567", "00:00:00.1", "123.23:59:59"] },
        { "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", ["123e4567-e89b-12d3-a456-426614174000", "ABCDEF01-2345-6789-abcd-ef0123456789"] },
        { @"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$", ["2024-02-29", "1999-12-31", "0000-10-01", "2000-01-10"] },
        { "ab+c", ["abc", "xabbbcx", "aabcc"] },
        { "^(cat|dog)s?$|^bird", ["cats", "dog", "birds", "bird!"] },
        { @"[^a-c\d]x", ["zx", "-x", "aax"] },
        { "^a{2,4}b{0,2}$", ["aa", "aaaab", "aaabb"] },
        { "^(ab){1,}$", ["ab", "ababab"] },
        { "x{3,}", ["xxx", "axxxxb"] },
        { "^[a-c]{2}|z$", ["ab", "cc-", "xyz"] },
        { @"^[\w.+-]+@[\w-]+\.[\w.]+$", ["a.b+c@ex-ample.co.uk", "_@a.b"] },
        { @"^\s*\d+\s*$", ["  12 ", "7", "\t3\t"] },
        { @"^(?:[01]\d|2[0-3]):[0-5]\d$", ["00:00", "23:59", "19:05"] },
        { @"^\S+$", ["abc", "é-é"] },
        { @"\W\D", ["  ", "a-b", "é."] },
        { "^.{3}$", ["abc", "a b", "é:x"] },
        { @"^[\u0041-\u005A]+\x2D?$", ["ABC", "Z-"] },
        { "^(a|ab)(c|bcd)(d*)$", ["abcd", "ac", "abcdd"] },
        { "^a+?b*?$", ["a", "aabb"] },
        { "a|", ["", "zz"] },
        { "", ["", "anything"] },
        { "^$", [""] },
        { @"\.\*\+\?\(\)\[\]\{\}\|\/\\", [@".*+?()[]{}|/\", @"x.*+?()[]{}|/\y"] },
        { @"^[\]\-a]+$", ["]-a", "a"] },
        { "^[-a]+[b-]$", ["-ab", "a-"] },
        { @"^(?<year>\d{4})-(?:\d\d)$", ["2024-01"] },
        { "^(?:a|b)*c(?:d|e)?$", ["c", "abce", "bbcd"] },
        { @"^[^\s\S]", ["never"] },
        { "^a|b$", ["a", "axx", "xxb", "b"] },
        { "x^y|a$b", ["xy", "ab"] },
        { "$^", [""] },
        { "^(?:x|y{2,3}?)+z??$", ["xyyz", "yyy", "xxx"] },
        { "a{,2}", ["a{,2}", "xa{,2}"] },
        { @"^\d{1,3}(,\d{3})*(\.\d+)?$", ["1,234,567.89", "12", "999.0"] },
        { "^(((a)))((b)|(c))$", ["ab", "ac"] },
        { @"^[A-Z][a-z]+(?: [A-Z][a-z]+)*$", ["Ann", "Ann Lee", "Zoe Ann Lee"] },
    };

    /// <summary>
    /// Characters the texts are drawn from: none where ECMA-262 and .NET disagree (.NET's <c>$</c> also matches before a
    /// final \n, its <c>.</c> takes \r, its ECMAScript <c>\s</c> is ASCII's only), so .NET is the oracle throughout.
    /// </summary>
    private const string Alphabet = "ab cxyz019-:.,@_AZéT+\t]*{}";

    [Theory]
    [MemberData(nameof(PatternsWithMatches))]
    public void MatchesAgreesWithDotNetAndEveryPrefixOfAMatchIsViable(string pattern, string[] matches)
    {
        var prefix = Parse(pattern);
        var oracle = new Regex(pattern, RegexOptions.ECMAScript | RegexOptions.CultureInvariant);
        foreach (string text in Texts(matches, new Random(pattern.Length * 7919 + 1)))
        {
            bool expected = oracle.IsMatch(text);
            Assert.True(expected == prefix.Matches(text), $"/{pattern}/ on \"{text}\": .NET {expected}");
            if (!expected) continue;
            for (int n = 0; n <= text.Length; n++) Assert.True(prefix.Viable(text.AsSpan(0, n)), $"/{pattern}/: prefix \"{text[..n]}\" of a match is not viable");
        }
    }

    /// <summary>The seeds and their prefixes, random edits of them, and random texts.</summary>
    private static IEnumerable<string> Texts(string[] seeds, Random random)
    {
        string pool = Alphabet + string.Concat(seeds);
        char Any() => pool[random.Next(pool.Length)];
        foreach (string seed in seeds)
        {
            for (int n = 0; n <= seed.Length; n++) yield return seed[..n];
            for (int k = 0; k < 60; k++)
            {
                var text = new System.Text.StringBuilder(seed);
                for (int edits = random.Next(1, 4); edits > 0; edits--)
                {
                    int at = random.Next(text.Length + 1);
                    switch (random.Next(3))
                    {
                        case 0: text.Insert(at, Any()); break;
                        case 1 when at < text.Length: text.Remove(at, 1); break;
                        default: if (at < text.Length) text[at] = Any(); break;
                    }
                }
                yield return text.ToString();
            }
        }
        for (int k = 0; k < 200; k++) yield return new string([.. Enumerable.Range(0, random.Next(13)).Select(_ => Any())]);
    }

    [Theory]
    [InlineData(@"^\d{2}$", "", true, false)]
    [InlineData(@"^\d{2}$", "1", true, false)]
    [InlineData(@"^\d{2}$", "12", true, true)]
    [InlineData(@"^\d{2}$", "123", false, false)]
    [InlineData(@"^\d{2}$", "a", false, false)]
    [InlineData(@"^\d{2}$", "1a", false, false)]
    // ECMA-262 reads ^a|b as (^a)|(b): a string that starts with a, or holds a b; a b can always still come.
    [InlineData("^a|b", "", true, false)]
    [InlineData("^a|b", "x", true, false)]
    [InlineData("^a|b", "ax", true, true)]
    [InlineData("^a|b", "xb", true, true)]
    [InlineData("^a$|^b$", "c", false, false)]
    [InlineData("^a$|^b$", "a", true, true)]
    [InlineData("^a$|^b$", "ab", false, false)]
    // Without $, once matched anything may follow.
    [InlineData("^ab", "abzzz\n", true, true)]
    [InlineData("^ab", "ac", false, false)]
    [InlineData("ab", "zzzzz", true, false)]
    [InlineData("ab", "zzabq", true, true)]
    // Empty languages are viable nowhere, not even at the start.
    [InlineData(@"[^\s\S]", "", false, false)]
    [InlineData(@"^a[^\s\S]|^b[]", "", false, false)]
    [InlineData("^a^b", "", false, false)]
    [InlineData("a$b", "", false, false)]
    [InlineData("$^", "", true, true)]
    [InlineData("$^", "a", false, false)]
    [InlineData("(?:$)+a", "", false, false)]
    public void ViableIsFalseExactlyWhereNoContinuationMatches(string pattern, string text, bool viable, bool matches)
    {
        var prefix = Parse(pattern);
        Assert.Equal(viable, prefix.Viable(text));
        Assert.Equal(matches, prefix.Matches(text));
        Assert.Equal(pattern, prefix.Pattern);
    }

    /// <summary>
    /// Every text up to 6 long over a small alphabet: viable exactly when it or a text at most 3 longer matches. The
    /// patterns are ones where a viable text needs at most 3 more characters, so the bounded search is exact.
    /// </summary>
    [Theory]
    [InlineData(@"^\d{2}$")]
    [InlineData(@"^(a|b)+-\d$")]
    [InlineData("^a{2,3}(-[01])?$")]
    [InlineData("^-?(0|1[01]*)$")]
    [InlineData("^(ab|ba)*$")]
    [InlineData(@"^a[^\s\S]")]
    [InlineData("^(a|b)-?")]
    [InlineData("ab-")]
    [InlineData("^a|b$")]
    [InlineData("0$|^1")]
    [InlineData("^[^-]{1,3}b?$")]
    [InlineData("^(?:a|b){2}(?:-|0){0,2}1$")]
    [InlineData("^a^b")]
    [InlineData("$^")]
    [InlineData("^.{0,2}-$")]
    [InlineData(@"^(?:a|b-)*1$")]
    [InlineData(@"^\w\W?\d{1,2}$")]
    public void ViableIsExactlyWhetherSomeShortContinuationMatches(string pattern)
    {
        const string alphabet = "ab01-";
        const int budget = 3;
        var prefix = Parse(pattern);
        bool Completes(string text, int more) =>
            prefix.Matches(text) || (more > 0 && alphabet.Any(c => Completes(text + c, more - 1)));
        var texts = new List<string> { "" };
        for (int from = 0; from < texts.Count; from++)
            if (texts[from].Length < 6) texts.AddRange(alphabet.Select(c => texts[from] + c));
        foreach (string text in texts)
            Assert.True(Completes(text, budget) == prefix.Viable(text), $"/{pattern}/ on \"{text}\": viable {prefix.Viable(text)}");
    }

    [Theory]
    [InlineData("(?=a)b", "lookahead (?=...)")]
    [InlineData("a(?!b)", "negative lookahead (?!...)")]
    [InlineData("(?<=a)b", "lookbehind (?<=...)")]
    [InlineData("(?<!a)b", "negative lookbehind (?<!...)")]
    [InlineData(@"(a)\1", @"backreference \1")]
    [InlineData(@"(?<n>a)\k<n>", @"named backreference \k<...>")]
    [InlineData(@"\bword", @"word boundary \b")]
    [InlineData(@"a\B", @"non-word boundary \B")]
    [InlineData(@"^\p{L}+$", @"unicode property escape \p{...}")]
    [InlineData(@"\P{Lu}", @"unicode property escape \P{...}")]
    [InlineData("(?i)abc", "inline flags")]
    [InlineData("(?i:abc)", "modifiers")]
    [InlineData(@"\012", @"octal escape \01")]
    [InlineData(@"\e", @"escape \e")]
    [InlineData("a{4097}", "too large")]
    [InlineData("(?:a{100}b?){41}", "too large")]
    [InlineData("(?:){99999999999}", "too large")]
    public void WhatItCannotHoldIsRefusedByName(string pattern, string feature)
    {
        var error = Assert.Throws<ArgumentException>(() => Parse(pattern));
        Assert.StartsWith(Path + ": ", error.Message);
        Assert.Contains(feature, error.Message);
    }

    [Theory]
    [InlineData("(a")]
    [InlineData("a)")]
    [InlineData("[a")]
    [InlineData("*a")]
    [InlineData("a|+")]
    [InlineData("a**")]
    [InlineData("a{2}{3}")]
    [InlineData("{2}")]
    [InlineData("^*")]
    [InlineData("[z-a]")]
    [InlineData("a{3,2}")]
    [InlineData(@"\x4")]
    [InlineData(@"\u12")]
    [InlineData(@"\u{110000}")]
    [InlineData(@"\")]
    [InlineData(@"[\d-z]")]
    [InlineData(@"\c1")]
    [InlineData("(?<>a)")]
    [InlineData("(?'n'a)")]
    public void AMalformedPatternIsRefusedWithItsPath(string pattern)
    {
        var error = Assert.Throws<ArgumentException>(() => Parse(pattern));
        Assert.StartsWith(Path + ": ", error.Message);
        Assert.Contains("not a valid pattern", error.Message);
    }

    [Fact]
    public void DeepNestingIsRefusedNotOverflowed()
    {
        string deep = new string('(', 5000) + "a" + new string(')', 5000);
        Assert.Contains("nesting", Assert.Throws<ArgumentException>(() => Parse(deep)).Message);
        Assert.True(Parse(new string('(', 100) + "a" + new string(')', 100)).Matches("a"));
    }

    [Fact]
    public void ALongCountedRepetitionUpToTheCapCompiles()
    {
        var prefix = Parse("^.{1,4000}$");
        Assert.True(prefix.Matches(new string('x', 4000)));
        Assert.True(prefix.Viable(new string('x', 4000)));
        Assert.False(prefix.Viable(new string('x', 4001)));
        Assert.False(prefix.Matches(""));
        Assert.True(prefix.Viable(""));
    }

    /// <summary>Where ECMA-262 and .NET part ways, the ECMA reading (JSON Schema's) holds.</summary>
    [Theory]
    [InlineData("^a$", "a\n", false)]                  // .NET's $ also matches before a final newline
    [InlineData("^.$", "\r", false)]                   // no line terminator is a '.'
    [InlineData("^.$", "\u2028", false)]
    [InlineData("^.$", "\u00e9", true)]
    [InlineData(@"^\s+$", "\u00a0\u3000\ufeff\u2029\v", true)]
    [InlineData(@"^\S$", "\u00a0", false)]
    [InlineData(@"^\w+$", "\u00e9", false)]
    [InlineData(@"^\d$", "\u0663", false)]             // ARABIC-INDIC DIGIT THREE
    [InlineData("^[]$", "", false)]                    // the empty class matches nothing ...
    [InlineData("^[^]$", "\n", true)]                  // ... and its complement anything
    [InlineData(@"^\0$", "\0", true)]
    [InlineData(@"^\cJ\t\f\v\r$", "\n\t\f\v\r", true)]
    [InlineData(@"^\u{41}\u{1F600}$", "A\U0001F600", true)]
    [InlineData(@"^[\b]$", "\b", true)]
    [InlineData(@"^\-\/\!\#$", "-/!#", true)]
    public void EcmaScriptSemanticsHoldWhereDotNetDiffers(string pattern, string text, bool matches) =>
        Assert.Equal(matches, Parse(pattern).Matches(text));

    [Fact]
    public void TheUnitIsTheCodePoint()
    {
        const string grin = "\U0001F600", grinning = "\U0001F601";
        Assert.True(Parse("^.$").Matches(grin));
        Assert.False(Parse("^..$").Matches(grin));
        Assert.True(Parse($"^[{grin}-\U0001F602]$").Matches(grinning));
        Assert.False(Parse($"^[{grin}-\U0001F602]$").Matches("\uD83D"));
        Assert.True(Parse(@"^\uD83D\uDE00$").Matches(grin));               // a pair of \u escapes is one code point
        Assert.True(Parse($"^{grin}+$").Matches(grin + grin));              // the quantifier takes the whole code point
        Assert.True(Parse(@"^[^a]$").Matches(grin));
        // A lone surrogate is a code point of its own: one '.', and never half of a pair's class.
        Assert.True(Parse("^.$").Matches("\uD800"));
        Assert.True(Parse("^..$").Matches("\uDE00\uD83D"));
        Assert.True(Parse(@"^\uD83D$").Matches("\uD83D"));
        Assert.False(Parse($"^{grin}$").Viable("\uD83D"));
        Assert.True(Parse("^.{3}$").Matches("a" + grin + "b"));                // four UTF-16 units, three code points
        Assert.False(Parse("^.{3}$").Viable("a" + grin + "bc"));
    }

    [Fact]
    public void ACheckAllocatesNothing()
    {
        var date = Parse(@"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$");
        var big = Parse(@"^(?:[a-z]{2,40}\d?){20}$");
        string text = "2024-02-2", twentyWords = string.Concat(Enumerable.Repeat("abcdefghij1", 20));
        Assert.True(date.Viable(text) && big.Viable(twentyWords));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int k = 0; k < 1000; k++)
            if (!date.Viable(text) || date.Matches(text) || !big.Viable(twentyWords)) Assert.Fail("changed answer");
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
