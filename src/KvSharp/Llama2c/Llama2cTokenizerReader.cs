using System.Buffers.Binary;
using System.Text;
using KvSharp.Gguf;
using KvSharp.Tokenization;

namespace KvSharp.Llama2c;

/// <summary>
/// Reads llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 byte length and
/// the bytes. The export wrote SentencePiece pieces with "▁" already turned into spaces and BOS/EOS as
/// "\n&lt;s&gt;\n" / "\n&lt;/s&gt;\n"; we turn that back into a SentencePiece vocabulary so the
/// <see cref="SentencePieceTokenizer"/> gives run.c's ids (same merge rule: best score, leftmost on ties;
/// dummy-prefix space; byte fallback to &lt;0xXX&gt; = byte + 3).
/// </summary>
public static class Llama2cTokenizerReader
{
    /// <summary>The tokenizer for a tokenizer.bin (see <see cref="Read"/> for <paramref name="vocabSize"/>).</summary>
    public static ITokenizer Load(string path, int? vocabSize = null) => TokenizerFactory.Create(Read(path, vocabSize));

    /// <summary>
    /// Reads every entry up to the end of the file: the file itself says how many tokens there are. When
    /// <paramref name="vocabSize"/> is given (the checkpoint header's, or the user's), the count must match it.
    /// </summary>
    public static TokenizerData Read(string path, int? vocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "vocabulary size must be positive");
        if (!File.Exists(path)) throw ModelPath.NotAFile(path, "tokenizer file");
        byte[] bytes = File.ReadAllBytes(path);
        var span = bytes.AsSpan();
        int pos = 0;

        int maxTokenLength = ReadInt32(span, ref pos, path, "max_token_length");
        if (maxTokenLength <= 0)
            throw new InvalidDataException($"{path}: max_token_length = {maxTokenLength} must be positive");

        var tokens = new List<string>();
        var scores = new List<float>();
        var types = new List<int>();
        for (int i = 0; pos < span.Length; i++)
        {
            scores.Add(BitConverter.Int32BitsToSingle(ReadInt32(span, ref pos, path, $"token {i} score")));
            int length = ReadInt32(span, ref pos, path, $"token {i} length");
            if (length < 0 || length > maxTokenLength)
                throw new InvalidDataException($"{path}: token {i} length = {length} (byte offset {pos - 4}) is outside 0..max_token_length {maxTokenLength}");
            if (span.Length - pos < length)
                throw new InvalidDataException($"{path}: token {i} needs {length} bytes at offset {pos} but the file has {span.Length - pos} left (truncated?)");
            string text = Encoding.UTF8.GetString(span.Slice(pos, length));
            pos += length;

            var (token, type) = i switch
            {
                0 => ("<unk>", TokenType.Unknown),
                1 => ("<s>", TokenType.Control),
                2 => ("</s>", TokenType.Control),
                _ when TokenizerBase.TryParseByteToken(text, out _) => (text, TokenType.Byte),
                _ => (text.Replace(' ', '\u2581'), TokenType.Normal),
            };
            tokens.Add(token);
            types.Add((int)type);
        }
        if (tokens.Count < 3)
            throw new InvalidDataException($"{path}: holds {tokens.Count} tokens; a llama2.c tokenizer has at least <unk>, <s> and </s>");
        if (vocabSize is { } expected && tokens.Count != expected)
            throw new InvalidDataException($"{path}: holds {tokens.Count} tokens but the vocabulary size is {expected}");

        return new TokenizerData(
            Model: "llama", Pre: null, Tokens: tokens.ToArray(), Scores: scores.ToArray(), TokenTypes: types.ToArray(), Merges: null,
            BosId: 1, EosId: 2, UnkId: 0, PadId: -1, AddBos: true, AddEos: false, AddSpacePrefix: true, EogIds: [])
        { Source = path };
    }

    private static int ReadInt32(ReadOnlySpan<byte> span, ref int pos, string path, string what)
    {
        if (span.Length - pos < 4)
            throw new InvalidDataException($"{path}: file ends at byte {span.Length} while reading {what} at offset {pos}");
        int v = BinaryPrimitives.ReadInt32LittleEndian(span.Slice(pos, 4));
        pos += 4;
        return v;
    }
}
