using System.Globalization;
using System.Text;

namespace KvSharp.Templates;

/// <summary>
/// Splits a Jinja template into text and tag tokens the way Jinja2 does with Hugging Face's chat-template settings:
/// trim_blocks (the first newline after a block or comment tag is dropped), lstrip_blocks (spaces and tabs from the
/// start of a line up to a block or comment tag are dropped), '-' inside a tag strips all whitespace on that side,
/// '+' turns lstrip off, newlines are normalized to \n and one trailing newline of the template is dropped.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private readonly string _name;
    private readonly string _src;
    private readonly List<JinjaToken> _tokens = [];
    private readonly List<int> _lineStarts = [0];
    private int _pos;

    private JinjaLexer(string name, string source)
    {
        _name = name;
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        _src = source;
        for (int i = source.IndexOf('\n'); i >= 0; i = source.IndexOf('\n', i + 1)) _lineStarts.Add(i + 1);
    }

    public static List<JinjaToken> Tokenize(string name, string source)
    {
        var lexer = new JinjaLexer(name, source);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        bool lineStarting = true; // at the template start or right after a tag whose consumed text ended with \n
        while (_pos < _src.Length)
        {
            int tag = NextTag(_pos);
            int textEnd = tag < 0 ? _src.Length : tag;
            string text = _src[_pos..textEnd];
            int textStart = _pos;
            if (tag < 0)
            {
                EmitText(text, textStart);
                break;
            }
            char kind = _src[tag + 1];
            char modifier = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
            if (modifier == '-') text = text.TrimEnd();
            else if (modifier != '+' && kind is '%' or '#')
            {
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && text.AsSpan(lineStart).Trim(" \t").IsEmpty) text = text[..lineStart];
            }
            EmitText(text, textStart);
            _pos = tag + 2 + (modifier is '-' or '+' ? 1 : 0);
            char endModifier = kind == '#' ? LexComment(tag) : LexTag(tag, kind);
            int consumedFrom = _pos;
            if (endModifier == '-')
                while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            else if (endModifier != '+' && kind is '%' or '#' && _pos < _src.Length && _src[_pos] == '\n')
                _pos++; // trim_blocks
            lineStarting = _pos > consumedFrom && _src[_pos - 1] == '\n';
        }
        var (line, column) = Position(_src.Length);
        _tokens.Add(new JinjaToken(JinjaTokenKind.End, "", line, column));
    }

    private int NextTag(int from)
    {
        while (true)
        {
            int i = _src.IndexOf('{', from);
            if (i < 0 || i + 1 >= _src.Length) return -1;
            if (_src[i + 1] is '{' or '%' or '#') return i;
            from = i + 1;
        }
    }

    private void EmitText(string text, int start)
    {
        if (text.Length == 0) return;
        var (line, column) = Position(start);
        _tokens.Add(new JinjaToken(JinjaTokenKind.Text, text, line, column));
    }

    /// <summary>Skips a comment; returns the modifier before its '#}' ('-', '+' or '\0').</summary>
    private char LexComment(int tag)
    {
        int end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0) throw Error(tag, "the comment '{#' is never closed with '#}'");
        _pos = end + 2;
        return end - 1 >= tag + 2 && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
    }

    /// <summary>Lexes the expression tokens of a {{ }} or {% %} tag; returns the modifier before its end ('-', '+' or '\0').</summary>
    private char LexTag(int tag, char kind)
    {
        string close = kind == '{' ? "}}" : "%}";
        var (line, column) = Position(tag);
        _tokens.Add(new JinjaToken(kind == '{' ? JinjaTokenKind.VariableBegin : JinjaTokenKind.BlockBegin, kind == '{' ? "{{" : "{%", line, column));
        int depth = 0; // brackets open: a '}' inside a dict literal is not the tag's end
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            if (_pos >= _src.Length) throw Error(tag, $"the tag '{{{kind}' is never closed with '{close}'");
            bool strip = _src[_pos] is '-' or '+' && At(_pos + 1, close);
            if (depth == 0 && (strip || At(_pos, close)))
            {
                (line, column) = Position(_pos);
                _pos += close.Length + (strip ? 1 : 0);
                _tokens.Add(new JinjaToken(kind == '{' ? JinjaTokenKind.VariableEnd : JinjaTokenKind.BlockEnd, close, line, column));
                return strip ? _src[_pos - 3] : '\0';
            }
            var token = LexExpressionToken();
            if (token.Kind == JinjaTokenKind.Operator)
            {
                if (token.Value is "(" or "[" or "{") depth++;
                else if (token.Value is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
            }
            _tokens.Add(token);
        }
    }

    private bool At(int index, string s) => index + s.Length <= _src.Length && string.CompareOrdinal(_src, index, s, 0, s.Length) == 0;

    private JinjaToken LexExpressionToken()
    {
        int start = _pos;
        var (line, column) = Position(start);
        char c = _src[_pos];
        if (char.IsLetter(c) || c == '_')
        {
            while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
            return new JinjaToken(JinjaTokenKind.Name, _src[start.._pos], line, column);
        }
        if (char.IsAsciiDigit(c))
        {
            while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
            bool isFloat = false;
            if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
            {
                isFloat = true;
                _pos++;
                while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos])) _pos++;
            }
            if (_pos < _src.Length && _src[_pos] is 'e' or 'E')
            {
                int save = _pos++;
                if (_pos < _src.Length && _src[_pos] is '+' or '-') _pos++;
                if (_pos < _src.Length && char.IsAsciiDigit(_src[_pos]))
                {
                    isFloat = true;
                    while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos])) _pos++;
                }
                else _pos = save;
            }
            return new JinjaToken(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, _src[start.._pos].Replace("_", ""), line, column);
        }
        if (c is '\'' or '"') return new JinjaToken(JinjaTokenKind.String, LexString(c), line, column);
        foreach (var op in Operators)
        {
            if (!At(_pos, op)) continue;
            _pos += op.Length;
            return new JinjaToken(JinjaTokenKind.Operator, op, line, column);
        }
        throw Error(start, $"unexpected character '{c}'");
    }

    /// <summary>A quoted string literal with Python's escapes (\n, \t, \\, \', \", \xHH, \uHHHH, ...).</summary>
    private string LexString(char quote)
    {
        int start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length) throw Error(start, $"the string starting here is never closed with {quote}");
            char c = _src[_pos++];
            if (c == quote) return sb.ToString();
            if (c != '\\') { sb.Append(c); continue; }
            if (_pos >= _src.Length) throw Error(start, $"the string starting here is never closed with {quote}");
            char e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break; // a backslash-newline continues the line
                case 'x': sb.Append(HexEscape(2, start)); break;
                case 'u': sb.Append(HexEscape(4, start)); break;
                case 'U': sb.Append(HexEscape(8, start)); break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as they are
            }
        }
    }

    private string HexEscape(int digits, int stringStart)
    {
        if (_pos + digits > _src.Length || !int.TryParse(_src.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || code > 0x10FFFF)
            throw Error(stringStart, $"bad \\{(digits == 2 ? 'x' : digits == 4 ? 'u' : 'U')} escape in a string");
        _pos += digits;
        return code is >= 0xD800 and <= 0xDFFF ? ((char)code).ToString() : char.ConvertFromUtf32(code);
    }

    private (int Line, int Column) Position(int index)
    {
        int line = _lineStarts.BinarySearch(index);
        if (line < 0) line = ~line - 1;
        return (line + 1, index - _lineStarts[line] + 1);
    }

    private TemplateException Error(int index, string message)
    {
        var (line, column) = Position(index);
        return new TemplateException(_name, line, column, message);
    }
}
