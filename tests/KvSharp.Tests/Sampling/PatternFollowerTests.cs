using System.Text;
using KvSharp.Sampling;

namespace KvSharp.Tests.Sampling;

/// <summary>
/// PatternFollower reads a reply's bytes token by token against a whole-text pattern: a character split across tokens
/// is viable while it may still become one the pattern takes; bytes that are no UTF-8 never are; Matches and Complete
/// say where the reply may end and where it must.
/// </summary>
public class PatternFollowerTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void ACharacterSplitAcrossTokensIsFollowed()
    {
        var f = new PatternFollower(PatternPrefix.WholeText("caf[éè]s?", "p"));
        Assert.True(f.Allows(B("caf")));
        f.Append(B("caf"));
        Assert.False(f.Matches);
        byte[] e = B("é"); // C3 A9
        Assert.True(f.Allows(e[..1]));    // may still become é or è
        Assert.False(f.Allows(B("a")));
        f.Append(e[..1]);
        Assert.False(f.Matches);          // a character cut off is no match yet
        Assert.True(f.Allows(e[1..]));
        Assert.False(f.Allows([0xA7]));   // C3 A7 is ç: not taken
        Assert.False(f.Allows([0x41]));   // not a continuation byte: no UTF-8
        f.Append(e[1..]);
        Assert.True(f.Matches);
        Assert.False(f.Complete);         // an s may follow
        f.Append(B("s"));
        Assert.True(f.Matches);
        Assert.True(f.Complete);
        Assert.False(f.Allows(B("s")));
    }

    [Fact]
    public void ChoicesAreLiteralAndWhole()
    {
        var f = new PatternFollower(PatternPrefix.OneOf(["a.b", "(x)", "a"], "c"));
        Assert.False(f.Matches);
        Assert.False(f.Allows(B("aXb"))); // the dot is a dot
        Assert.True(f.Allows(B("a.")));
        f.Append(B("a"));
        Assert.True(f.Matches);           // "a" is a choice, "a.b" may still come
        Assert.False(f.Complete);
        f.Append(B(".b"));
        Assert.True(f.Complete);
        var g = new PatternFollower(PatternPrefix.OneOf(["(x)"], "c"));
        g.Append(B("(x)"));
        Assert.True(g.Complete);
        Assert.Throws<ArgumentException>(() => PatternPrefix.OneOf([], "c"));
    }

    [Fact]
    public void AnEmptyMatchMayEndAtOnce()
    {
        Assert.True(new PatternFollower(PatternPrefix.WholeText("a*", "p")).Matches);
        Assert.False(new PatternFollower(PatternPrefix.WholeText("a+", "p")).Matches);
        Assert.True(new PatternFollower(PatternPrefix.WholeText("", "p")).Complete);
    }

    [Theory]
    [InlineData("^(?:[a-c]+d?)$")]
    [InlineData("ab")]
    [InlineData("^a|c$")]
    [InlineData("^(?:x(yz){1,3}|é+)$")]
    [InlineData("[0-9]{2}")]
    public void PieceByPieceAgreesWithReadingTheWholeText(string pattern)
    {
        var p = PatternPrefix.Parse(pattern, "p");
        var rng = new Random(pattern.Length);
        string alphabet = "abcdxyz0123é ";
        for (int trial = 0; trial < 400; trial++)
        {
            var f = new PatternFollower(p);
            var text = new StringBuilder();
            for (int step = 0; step < 8; step++)
            {
                string piece = string.Concat(Enumerable.Range(0, rng.Next(1, 3)).Select(_ => alphabet[rng.Next(alphabet.Length)]));
                bool viable = p.Viable(text + piece);
                Assert.True(viable == f.Allows(B(piece)), $"{pattern}: '{text}' + '{piece}'");
                if (!viable) break;
                f.Append(B(piece));
                text.Append(piece);
                Assert.True(p.Matches(text.ToString()) == f.Matches, $"{pattern}: '{text}' matches");
            }
        }
    }
}
