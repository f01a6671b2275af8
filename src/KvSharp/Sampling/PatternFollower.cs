using System.Buffers;
using System.Text.Unicode;

namespace KvSharp.Sampling;

/// <summary>
/// A reply held to a <see cref="PatternPrefix"/> as it is generated: its text so far (whole characters, and the bytes of
/// one cut off at the end), whether a token's bytes keep it a prefix of a match, whether it is a match now, and whether
/// it is one nothing may extend.
/// </summary>
/// <remarks>
/// A constrained step may ask about every token of the vocabulary, so asking allocates nothing: the token's bytes are
/// decoded into the one buffer after the text so far, and the pattern reads the text from its start (no state to copy).
/// </remarks>
public sealed class PatternFollower
{
    private readonly PatternPrefix _pattern;
    private char[] _chars = new char[64];
    private int _length;                         // whole characters of the text so far
    private byte[] _bytes = new byte[16];        // a cut-off character's bytes, then a token's, while one is read
    private int _tail;                           // how many of _bytes are the cut-off character's
    private int _read;                           // characters in the buffer after the last Read

    public PatternFollower(PatternPrefix pattern)
    {
        _pattern = pattern ?? throw new ArgumentNullException(nameof(pattern));
        Matches = pattern.Matches("");
        Complete = Matches && !pattern.ViableWithAnyOf("", 0, 0x10FFFF);
    }

    /// <summary>The text so far is a match (so the reply may end here).</summary>
    public bool Matches { get; private set; }

    /// <summary>The text so far is a match that no character may extend: the reply is whole.</summary>
    public bool Complete { get; private set; }

    /// <summary>Whether the text so far followed by <paramref name="piece"/> is still a prefix of a match.</summary>
    public bool Allows(ReadOnlySpan<byte> piece) => Read(piece, out _, out _) switch
    {
        OperationStatus.Done => _pattern.Viable(_chars.AsSpan(0, _read)),
        // A character cut off at the end may still become any non-ASCII one.
        OperationStatus.NeedMoreData => _pattern.ViableWithAnyOf(_chars.AsSpan(0, _read), 0x80, 0x10FFFF),
        _ => false,
    };

    /// <summary>Appends a token's bytes (one <see cref="Allows"/> allowed).</summary>
    public void Append(ReadOnlySpan<byte> piece)
    {
        var status = Read(piece, out int consumed, out int total);
        // Keep the whole characters read and the bytes of one still cut off.
        _length = _read;
        _bytes.AsSpan(consumed, total - consumed).CopyTo(_bytes);
        _tail = total - consumed;
        var text = _chars.AsSpan(0, _length);
        Matches = status == OperationStatus.Done && _pattern.Matches(text);
        Complete = Matches && !_pattern.ViableWithAnyOf(text, 0, 0x10FFFF);
    }

    /// <summary>Decodes the cut-off bytes and <paramref name="piece"/> into the buffer after the text so far.</summary>
    private OperationStatus Read(ReadOnlySpan<byte> piece, out int consumed, out int total)
    {
        total = _tail + piece.Length;
        if (_bytes.Length < total) Array.Resize(ref _bytes, Math.Max(total, 2 * _bytes.Length));
        piece.CopyTo(_bytes.AsSpan(_tail));
        if (_chars.Length < _length + total) Array.Resize(ref _chars, Math.Max(_length + total, 2 * _chars.Length));
        var status = Utf8.ToUtf16(_bytes.AsSpan(0, total), _chars.AsSpan(_length), out consumed, out int written, replaceInvalidSequences: false, isFinalBlock: false);
        _read = _length + written;
        return status;
    }
}
