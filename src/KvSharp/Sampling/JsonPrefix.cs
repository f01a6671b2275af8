namespace KvSharp.Sampling;

/// <summary>
/// Whether a byte string is the start of a JSON text (RFC 8259), fed one byte at a time: a pushdown machine over
/// objects, arrays, strings (escapes, \u with four hex digits; any byte from 0x20 up, so UTF-8 passes through),
/// numbers and the three literals. <see cref="Feed"/> refuses a byte no JSON text could continue with;
/// <see cref="IsComplete"/> says a whole value has been read. Whitespace between tokens is what llama.cpp's JSON
/// grammars allow (<see cref="JsonWhitespace"/>), so a constrained model cannot pad. A value type: copying it is a snapshot to try bytes on.
/// </summary>
public struct JsonPrefix
{
    /// <summary>
    /// Most digits in a number's integer part, fraction or exponent, as llama.cpp's JSON grammars allow: more than a
    /// double holds, and a reply read into a typed object (a long) cannot overflow it with a run of digits.
    /// </summary>
    public const int MaxDigits = 16;

    private enum Lex : byte { Value, ObjectStart, Key, Colon, After, ArrayStart, String, Escape, Unicode, Minus, Zero, Int, FracStart, Frac, ExpStart, ExpSign, Exp, Literal, Done }

    // Open containers, innermost last: '{' or '['. A string's role (key or value) is told by the state it returns to.
    private System.Collections.Immutable.ImmutableStack<byte> _containers;
    private Lex _state;
    private bool _stringIsKey;
    private byte _pending;          // hex digits left in \u, the index into the literal being read, or the digits of a number's part so far
    private string? _literal;
    private int _whitespace;        // the whitespace run since the last token (JsonWhitespace.Next)
    private Utf8Sequence _utf8;     // inside a string: where its bytes stand in a character
    private readonly bool _objectOnly;

    /// <param name="objectOnly">The text must be an object (OpenAI's json_object mode), not any JSON value.</param>
    public JsonPrefix(bool objectOnly)
    {
        _containers = System.Collections.Immutable.ImmutableStack<byte>.Empty;
        _state = Lex.Value;
        _objectOnly = objectOnly;
    }

    /// <summary>A whole JSON value has been read (only whitespace may follow).</summary>
    public readonly bool IsComplete => _state == Lex.Done || (_containers.IsEmpty && _state is Lex.Zero or Lex.Int or Lex.Frac or Lex.Exp && !_objectOnly);

    /// <summary>Takes one byte; false (and no change) when no JSON text continues with it.</summary>
    public bool Feed(byte b)
    {
        var saved = this;
        if (Step(b)) return true;
        this = saved;
        return false;
    }

    /// <summary>Takes the bytes in order; false (and no change) when one of them is refused.</summary>
    public bool Feed(ReadOnlySpan<byte> bytes)
    {
        var saved = this;
        foreach (byte b in bytes)
            if (!Step(b))
            {
                this = saved;
                return false;
            }
        return true;
    }

    private bool Step(byte b)
    {
        switch (_state)
        {
            case Lex.String:
                // A character's bytes come whole: no quote, escape or control byte cuts one off.
                if (_utf8.InCharacter) return _utf8.Next(b);
                if (b == '"') return EndValue(isKey: _stringIsKey);
                if (b == '\\') { _state = Lex.Escape; return true; }
                return b >= 0x20 && _utf8.Next(b);
            case Lex.Escape:
                if (b == 'u') { _state = Lex.Unicode; _pending = 4; return true; }
                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t') { _state = Lex.String; return true; }
                return false;
            case Lex.Unicode:
                if (!char.IsAsciiHexDigit((char)b)) return false;
                if (--_pending == 0) _state = Lex.String;
                return true;
            case Lex.Literal:
                if (b != _literal![_pending]) return false;
                if (++_pending == _literal.Length) return EndValue(isKey: false);
                return true;
            case Lex.Minus:
                if (b == '0') { _state = Lex.Zero; return true; }
                if (b is >= (byte)'1' and <= (byte)'9') { _state = Lex.Int; _pending = 1; return true; }
                return false;
            case Lex.Zero or Lex.Int:
                if (_state == Lex.Int && b is >= (byte)'0' and <= (byte)'9') return ++_pending <= MaxDigits;
                if (b == '.') { _state = Lex.FracStart; return true; }
                if (b is (byte)'e' or (byte)'E') { _state = Lex.ExpStart; return true; }
                return EndNumber(b);
            case Lex.FracStart:
                if (b is >= (byte)'0' and <= (byte)'9') { _state = Lex.Frac; _pending = 1; return true; }
                return false;
            case Lex.Frac:
                if (b is >= (byte)'0' and <= (byte)'9') return ++_pending <= MaxDigits;
                if (b is (byte)'e' or (byte)'E') { _state = Lex.ExpStart; return true; }
                return EndNumber(b);
            case Lex.ExpStart:
                if (b is (byte)'+' or (byte)'-') { _state = Lex.ExpSign; return true; }
                if (b is >= (byte)'0' and <= (byte)'9') { _state = Lex.Exp; _pending = 1; return true; }
                return false;
            case Lex.ExpSign:
                if (b is >= (byte)'0' and <= (byte)'9') { _state = Lex.Exp; _pending = 1; return true; }
                return false;
            case Lex.Exp:
                if (b is >= (byte)'0' and <= (byte)'9') return ++_pending <= MaxDigits;
                return EndNumber(b);
        }
        // Between tokens: whitespace, as llama.cpp's grammars allow it.
        if (JsonWhitespace.Is(b)) return JsonWhitespace.Next(ref _whitespace, b);
        _whitespace = 0;
        switch (_state)
        {
            case Lex.Value:
            case Lex.ArrayStart:
                if (_state == Lex.ArrayStart && b == ']') return Close((byte)'[');
                return StartValue(b);
            case Lex.ObjectStart:
                if (b == '}') return Close((byte)'{');
                goto case Lex.Key;
            case Lex.Key:
                if (b != '"') return false;
                _state = Lex.String;
                _stringIsKey = true;
                return true;
            case Lex.Colon:
                if (b != ':') return false;
                _state = Lex.Value;
                return true;
            case Lex.After:
                byte open = _containers.Peek();
                if (b == ',') { _state = open == '{' ? Lex.Key : Lex.Value; return true; }
                if (b == (open == '{' ? '}' : ']')) return Close(open);
                return false;
            default: // Done: only whitespace
                return false;
        }
    }

    private bool StartValue(byte b)
    {
        if (_objectOnly && _containers.IsEmpty && b != '{') return false;
        switch (b)
        {
            case (byte)'{': _containers = _containers.Push(b); _state = Lex.ObjectStart; return true;
            case (byte)'[': _containers = _containers.Push(b); _state = Lex.ArrayStart; return true;
            case (byte)'"': _state = Lex.String; _stringIsKey = false; return true;
            case (byte)'-': _state = Lex.Minus; return true;
            case (byte)'0': _state = Lex.Zero; return true;
            case >= (byte)'1' and <= (byte)'9': _state = Lex.Int; _pending = 1; return true;
            case (byte)'t': return StartLiteral("true");
            case (byte)'f': return StartLiteral("false");
            case (byte)'n': return StartLiteral("null");
            default: return false;
        }
    }

    private bool StartLiteral(string literal)
    {
        _state = Lex.Literal;
        _literal = literal;
        _pending = 1;
        return true;
    }

    /// <summary>A number ends at the first byte that cannot continue it, which is then read as what follows the value.</summary>
    private bool EndNumber(byte b)
    {
        EndValue(isKey: false);
        return Step(b);
    }

    private bool EndValue(bool isKey)
    {
        _state = isKey ? Lex.Colon : _containers.IsEmpty ? Lex.Done : Lex.After;
        return true;
    }

    private bool Close(byte open)
    {
        _containers = _containers.Pop();
        return EndValue(isKey: false);
    }
}
