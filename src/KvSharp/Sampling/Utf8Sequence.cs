namespace KvSharp.Sampling;

/// <summary>
/// Where UTF-8 bytes stand inside a character, and what the next byte may be (the Unicode Standard's table of
/// well-formed byte sequences: no overlong forms, no surrogates, nothing past U+10FFFF). A constrained reply's strings
/// are held to it, so a JSON reply is always valid UTF-8: a byte-level vocabulary could otherwise cut a character off
/// with a closing quote.
/// </summary>
internal struct Utf8Sequence
{
    private byte _left, _low, _high;

    /// <summary>Bytes of a character are still to come.</summary>
    public readonly bool InCharacter => _left > 0;

    /// <summary>Takes one byte; false where no well-formed UTF-8 continues with it.</summary>
    public bool Next(byte b)
    {
        if (_left > 0)
        {
            if (b < _low || b > _high) return false;
            _left--;
            (_low, _high) = (0x80, 0xBF);
            return true;
        }
        (_left, _low, _high) = b switch
        {
            < 0x80 => ((byte)0, (byte)0x80, (byte)0xBF),
            >= 0xC2 and <= 0xDF => ((byte)1, (byte)0x80, (byte)0xBF),
            0xE0 => ((byte)2, (byte)0xA0, (byte)0xBF),
            0xED => ((byte)2, (byte)0x80, (byte)0x9F),
            >= 0xE1 and <= 0xEF => ((byte)2, (byte)0x80, (byte)0xBF),
            0xF0 => ((byte)3, (byte)0x90, (byte)0xBF),
            >= 0xF1 and <= 0xF3 => ((byte)3, (byte)0x80, (byte)0xBF),
            0xF4 => ((byte)3, (byte)0x80, (byte)0x8F),
            _ => ((byte)0xFF, (byte)0, (byte)0),
        };
        if (_left != 0xFF) return true;
        _left = 0;
        return false;
    }
}
