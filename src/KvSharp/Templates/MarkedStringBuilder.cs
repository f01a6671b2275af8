using System.Text;
using KvSharp.Tokenization;

namespace KvSharp.Templates;

/// <summary>Builds a <see cref="MarkedString"/> piece by piece, merging adjacent data ranges.</summary>
internal sealed class MarkedStringBuilder
{
    private readonly StringBuilder _text = new();
    private readonly List<TextRange> _data = [];

    public int Length => _text.Length;

    public MarkedStringBuilder Append(string text, bool data = false)
    {
        if (text.Length == 0) return this;
        if (data) Mark(_text.Length, text.Length);
        _text.Append(text);
        return this;
    }

    public MarkedStringBuilder Append(char c, bool data)
    {
        if (data) Mark(_text.Length, 1);
        _text.Append(c);
        return this;
    }

    public MarkedStringBuilder Append(MarkedString s) => Append(s, 0, s.Length);

    public MarkedStringBuilder Append(MarkedString s, int start, int length)
    {
        if (length <= 0) return this;
        int offset = _text.Length - start;
        foreach (var r in s.DataRanges)
        {
            int from = Math.Max(r.Start, start), to = Math.Min(r.End, start + length);
            if (from < to) Mark(from + offset, to - from);
        }
        _text.Append(s.Text, start, length);
        return this;
    }

    private void Mark(int start, int length)
    {
        if (_data.Count > 0 && _data[^1].End == start) _data[^1] = _data[^1] with { Length = _data[^1].Length + length };
        else _data.Add(new TextRange(start, length));
    }

    public MarkedString ToMarked() => _text.Length == 0 ? MarkedString.Empty : MarkedString.Create(_text.ToString(), _data.ToArray());

    public override string ToString() => _text.ToString();
}
