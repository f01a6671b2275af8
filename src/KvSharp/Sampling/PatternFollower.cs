using System.Buffers;
using System.Text.Unicode;

namespace KvSharp.Sampling;

/// <summary>
/// A reply held to a <see cref="PatternPrefix"/> as it is generated: the pattern's states after its whole characters so
/// far (and the bytes of one cut off at the end), whether a token's bytes keep it a prefix of a match, whether it is a
/// match now, and whether it is one nothing may extend.
/// </summary>
/// <remarks>
/// A constrained step may ask about every token of the vocabulary, so asking costs the token's own characters only
/// (the states are moved over them from where the reply stands, <see cref="PatternPrefix.Advance"/>) and allocates
/// nothing.
/// </remarks>
public sealed class PatternFollower
{
    private readonly PatternPrefix _pattern;
    private readonly ulong[] _state, _trial;     // the states after the reply's whole characters; a token's trial
    private byte[] _bytes = new byte[16];        // a cut-off character's bytes, then a token's, while one is read
    private int _tail;                           // how many of _bytes are the cut-off character's
    private char[] _chars = new char[16];        // a token's characters

    public PatternFollower(PatternPrefix pattern)
    {
        _pattern = pattern ?? throw new ArgumentNullException(nameof(pattern));
        _state = new ulong[pattern.StateWords];
        _trial = new ulong[pattern.StateWords];
        pattern.Begin(_state);
        Matches = pattern.Accepts(_state);
        Complete = Matches && !pattern.TakesAnyOf(_state, 0, 0x10FFFF);
    }

    /// <summary>The text so far is a match (so the reply may end here).</summary>
    public bool Matches { get; private set; }

    /// <summary>The text so far is a match that no character may extend: the reply is whole.</summary>
    public bool Complete { get; private set; }

    /// <summary>Whether the text so far followed by <paramref name="piece"/> is still a prefix of a match.</summary>
    public bool Allows(ReadOnlySpan<byte> piece) => Try(piece, out _, out _) is { } status && status != OperationStatus.InvalidData;

    /// <summary>Appends a token's bytes (one <see cref="Allows"/> allowed).</summary>
    public void Append(ReadOnlySpan<byte> piece)
    {
        var status = Try(piece, out int consumed, out int total);
        if (status is null or OperationStatus.InvalidData)
            throw new ArgumentException("the piece does not keep the reply a prefix of a match: ask Allows first", nameof(piece));
        _trial.CopyTo(_state);
        _bytes.AsSpan(consumed, total - consumed).CopyTo(_bytes);
        _tail = total - consumed;
        Matches = status == OperationStatus.Done && _pattern.Accepts(_state);
        Complete = Matches && !_pattern.TakesAnyOf(_state, 0, 0x10FFFF);
    }

    /// <summary>
    /// Moves the trial states over the cut-off bytes and <paramref name="piece"/>: null where the text can no longer
    /// become a match, else how its bytes decoded (NeedMoreData: a character is cut off at the end, which must be able
    /// to become some non-ASCII code point the pattern takes next).
    /// </summary>
    private OperationStatus? Try(ReadOnlySpan<byte> piece, out int consumed, out int total)
    {
        total = _tail + piece.Length;
        if (_bytes.Length < total) Array.Resize(ref _bytes, Math.Max(total, 2 * _bytes.Length));
        piece.CopyTo(_bytes.AsSpan(_tail));
        if (_chars.Length < total) Array.Resize(ref _chars, Math.Max(total, 2 * _chars.Length));
        var status = Utf8.ToUtf16(_bytes.AsSpan(0, total), _chars, out consumed, out int written, replaceInvalidSequences: false, isFinalBlock: false);
        if (status == OperationStatus.InvalidData) return status;
        _state.CopyTo(_trial);
        if (!_pattern.Advance(_trial, _chars.AsSpan(0, written))) return null;
        if (status == OperationStatus.NeedMoreData && !_pattern.TakesAnyOf(_trial, 0x80, 0x10FFFF)) return null;
        return status;
    }
}
