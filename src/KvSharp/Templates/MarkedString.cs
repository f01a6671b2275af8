using KvSharp.Tokenization;

namespace KvSharp.Templates;

/// <summary>
/// A template string that remembers which of its characters are data (came from the caller's messages) rather than
/// template text. Concatenation, slicing, trimming and the other string operations keep the marks, so after
/// rendering the tokenizer knows which ranges must never be parsed as special tokens.
/// </summary>
internal sealed class MarkedString : IEquatable<MarkedString>
{
    public static readonly MarkedString Empty = new("", []);

    private readonly TextRange[] _data; // sorted, non-overlapping, non-adjacent

    private MarkedString(string text, TextRange[] data)
    {
        Text = text;
        _data = data;
    }

    public string Text { get; }
    public int Length => Text.Length;
    public IReadOnlyList<TextRange> DataRanges => _data;
    public bool HasData => _data.Length > 0;

    /// <summary>Template text (a literal, a number formatted, a bos_token): nothing in it is data.</summary>
    public static MarkedString Plain(string text) => text.Length == 0 ? Empty : new(text, []);

    /// <summary>Caller data: every character is marked.</summary>
    public static MarkedString Data(string text) => text.Length == 0 ? Empty : new(text, [new TextRange(0, text.Length)]);

    internal static MarkedString Create(string text, TextRange[] data) => new(text, data);

    /// <summary>Whether the character at <paramref name="index"/> is data (binary search over the ranges).</summary>
    public bool IsDataAt(int index)
    {
        int lo = 0, hi = _data.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_data[mid].End <= index) lo = mid + 1;
            else if (_data[mid].Start > index) hi = mid - 1;
            else return true;
        }
        return false;
    }

    public MarkedString Substring(int start, int length)
    {
        if (start == 0 && length == Length) return this;
        var b = new MarkedStringBuilder();
        b.Append(this, start, length);
        return b.ToMarked();
    }

    /// <summary>
    /// Whether this is Jinja2's Markup (what |safe returns): joined with + to a plain string, that string is
    /// HTML-escaped first (markupsafe's Markup.__add__ / __radd__), which Hugging Face's renderer does too.
    /// </summary>
    public bool IsSafe { get; private init; }

    /// <summary>The same text as Markup (<see cref="IsSafe"/>).</summary>
    public MarkedString AsSafe() => IsSafe ? this : new MarkedString(Text, _data) { IsSafe = true };

    /// <summary>
    /// a + b as Jinja2 joins them: a Markup side escapes a plain other side (&amp; &lt; &gt; ' " as markupsafe does) and
    /// the result is Markup; two plain strings join as they are.
    /// </summary>
    public static MarkedString Add(MarkedString a, MarkedString b)
    {
        if (a.IsSafe == b.IsSafe) return a.IsSafe ? Concat(a, b).AsSafe() : Concat(a, b);
        return (a.IsSafe ? Concat(a, Escape(b)) : Concat(Escape(a), b)).AsSafe();
    }

    private static MarkedString Escape(MarkedString s)
    {
        string escaped = s.Text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("'", "&#39;").Replace("\"", "&#34;");
        if (escaped.Length == s.Length) return s;
        return s.HasData ? Data(escaped) : Plain(escaped); // a length-changing mapping: keep the conservative mark
    }

    public static MarkedString Concat(MarkedString a, MarkedString b)
    {
        if (a.Length == 0) return b;
        if (b.Length == 0) return a;
        var builder = new MarkedStringBuilder();
        builder.Append(a);
        builder.Append(b);
        return builder.ToMarked();
    }

    /// <summary>A string of the same length with each character mapped (case changes); marks stay where they were.</summary>
    public MarkedString MapChars(Func<string, string> map)
    {
        string mapped = map(Text);
        if (mapped.Length == Text.Length) return new MarkedString(mapped, _data);
        return HasData ? Data(mapped) : Plain(mapped); // a length-changing mapping: keep the conservative mark
    }

    public bool Equals(MarkedString? other) => other is not null && Text == other.Text;
    public override bool Equals(object? obj) => obj is MarkedString m && Equals(m);
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Text);
    public override string ToString() => Text;
}
