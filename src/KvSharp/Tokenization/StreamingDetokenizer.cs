using System.Text;

namespace KvSharp.Tokenization;

/// <summary>
/// Turns generated ids into text as they arrive (one per generation). A character whose UTF-8 bytes are split
/// across tokens (byte-fallback tokens, byte-level BPE) is held back until its last byte arrives, so every
/// returned string is whole characters; the concatenation of all returns plus <see cref="Flush"/> equals
/// <see cref="ITokenizer.Decode"/> of the same ids when <c>skipLeadingSpace</c> = the tokenizer's
/// <see cref="ITokenizer.StripsLeadingSpace"/>.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly ITokenizer _tokenizer;
    private readonly bool _skipLeadingSpace;
    // The framework's UTF-8 decoder keeps an incomplete trailing sequence between calls and replaces invalid
    // bytes with U+FFFD exactly as Encoding.UTF8.GetString does for the whole sequence.
    private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];
    private bool _seenBytes;

    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="skipLeadingSpace">
    /// Drop one leading space from the first piece that has bytes: SentencePiece's dummy-prefix space
    /// (llama2.c strips it after BOS). Pass <see cref="ITokenizer.StripsLeadingSpace"/> for the usual behaviour.
    /// </param>
    public StreamingDetokenizer(ITokenizer tokenizer, bool skipLeadingSpace)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _skipLeadingSpace = skipLeadingSpace;
    }

    /// <summary>Adds one id; returns the complete characters now available (often "" mid-character).</summary>
    public string Append(int id)
    {
        ReadOnlySpan<byte> piece = _tokenizer.TokenPiece(id);
        if (piece.IsEmpty) return string.Empty;
        if (!_seenBytes)
        {
            _seenBytes = true;
            if (_skipLeadingSpace && piece[0] == (byte)' ') piece = piece[1..];
        }
        return DecodeChars(piece, flush: false);
    }

    /// <summary>Whatever bytes are still pending (an incomplete character becomes U+FFFD); resets the decoder.</summary>
    public string Flush() => DecodeChars(ReadOnlySpan<byte>.Empty, flush: true);

    private string DecodeChars(ReadOnlySpan<byte> bytes, bool flush)
    {
        // Every byte yields at most one UTF-16 unit, plus at most 3 pending bytes from earlier calls.
        int max = bytes.Length + 4;
        if (_chars.Length < max) _chars = new char[Math.Max(max, _chars.Length * 2)];
        int n = _decoder.GetChars(bytes, _chars, flush);
        return n == 0 ? string.Empty : new string(_chars, 0, n);
    }
}
