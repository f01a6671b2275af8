namespace KvSharp.Tokenization;

/// <summary>Text to token ids and back, with llama.cpp's semantics for the model's tokenizer.</summary>
public interface ITokenizer
{
    int VocabSize { get; }
    int BosId { get; }
    int EosId { get; }

    /// <summary>Whether <see cref="Encode"/> with addSpecial prepends BOS (from the model's metadata).</summary>
    bool AddBos { get; }

    /// <summary>
    /// True for SentencePiece-style vocabularies that prepend a dummy space to the text: <see cref="Decode"/>
    /// then drops one leading space from the first piece that has bytes, so decoding inverts encoding.
    /// </summary>
    bool StripsLeadingSpace { get; }

    /// <summary>eos, eot, eom and other tokens that end a generated turn.</summary>
    bool IsEndOfGeneration(int id);

    /// <summary>
    /// Tokenizes <paramref name="text"/>. <paramref name="addSpecial"/>: BOS (and EOS) as the model's metadata
    /// says. <paramref name="parseSpecial"/>: control tokens' text in the input ("&lt;s&gt;", "&lt;|im_start|&gt;")
    /// becomes their id; otherwise it is tokenized as plain text. User-defined tokens are always matched, as in llama.cpp.
    /// </summary>
    int[] Encode(string text, bool addSpecial, bool parseSpecial);

    /// <summary>
    /// Tokenizes <paramref name="text"/> that continues text already tokenized: no BOS or EOS, and no SentencePiece
    /// dummy-prefix space at its start (there is one after a special token inside it, as in <see cref="Encode(string, bool, bool)"/>),
    /// so the ids of the earlier text followed by these spell exactly the two texts joined.
    /// </summary>
    int[] EncodeContinuation(string text, bool parseSpecial);

    /// <summary>
    /// Tokenizes a rendered chat prompt: special tokens' text is parsed as special (as with parseSpecial), except
    /// inside <paramref name="literalRanges"/> (sorted, non-overlapping: the characters that came from message
    /// content), where it is read as with parseSpecial off (control tokens stay plain text; user-defined tokens match
    /// as always), so a user who types "&lt;|im_start|&gt;system" cannot switch roles.
    /// The text between special tokens is tokenized exactly as <see cref="Encode(string, bool, bool)"/> does.
    /// </summary>
    int[] Encode(string text, bool addSpecial, IReadOnlyList<TextRange> literalRanges);

    /// <summary>
    /// The rest of a rendered chat prompt whose start is already tokenized: <see cref="Encode(string, bool, IReadOnlyList{TextRange})"/>'s
    /// special-token rules with <see cref="EncodeContinuation(string, bool)"/>'s start (no BOS, no dummy-prefix space).
    /// </summary>
    int[] EncodeContinuation(string text, IReadOnlyList<TextRange> literalRanges);

    /// <summary>The raw bytes this token decodes to (a copy). Control and unknown tokens give no bytes.</summary>
    byte[] TokenBytes(int id);

    /// <summary>
    /// The bytes this token decodes to, without copying. With <paramref name="renderSpecial"/>, control and
    /// unknown tokens give their text (e.g. "&lt;/s&gt;") instead of nothing.
    /// </summary>
    ReadOnlySpan<byte> TokenPiece(int id, bool renderSpecial = false);

    /// <summary>The token's text exactly as stored in the vocabulary.</summary>
    string TokenText(int id);

    /// <summary>Whole-sequence decode to text; invalid UTF-8 becomes U+FFFD. Ids out of range throw.</summary>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>As <see cref="Decode(ReadOnlySpan{int})"/>; with <paramref name="renderSpecial"/>, control tokens show their text.</summary>
    string Decode(ReadOnlySpan<int> ids, bool renderSpecial);
}
