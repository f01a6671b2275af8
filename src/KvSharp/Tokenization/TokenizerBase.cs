using System.Buffers;
using System.Text;

namespace KvSharp.Tokenization;

/// <summary>
/// What SentencePiece-style and byte-level BPE tokenizers share: the vocabulary and its text-to-id lookup,
/// special-token splitting, BOS/EOS, end-of-generation ids and decoding through a per-token byte cache
/// (llama.cpp's token_to_piece). Subclasses only turn a run of plain text into ids.
/// </summary>
public abstract class TokenizerBase : ITokenizer
{
    // Token texts that end a turn even when the metadata does not say so (llama.cpp matches the same strings).
    private static readonly string[] EndOfGenerationTexts =
    [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
        "<EOT>", "_<EOT>", "<|end_of_text|>", "<|return|>", "<|call|>",
    ];

    // gpt-oss's Harmony format (o200k_harmony): a reply is messages, each "<|start|>role<|channel|>name<|message|>text",
    // closed by <|end|>, except the last, closed by <|return|> (the answer) or <|call|> (a tool call). So <|end|> does
    // not end generation there (the answer follows the analysis), and these markers show in decoded text so that the
    // reply can be read as messages. llama.cpp does both (llama-vocab.cpp), where the vocabulary has <|return|> and <|call|>.
    private static readonly string[] HarmonyMarkers = ["<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|end|>"];

    private readonly string[] _tokens;
    private readonly TokenType[] _types;
    private readonly byte[][] _pieces;
    private readonly byte[][] _specialPieces;
    private readonly bool[] _endOfGeneration;
    private readonly SpecialTokenSplitter _splitter;
    private readonly Dictionary<string, int> _tokenToId;

    /// <summary>Text-to-id lookup that takes spans, so merging never builds strings.</summary>
    protected Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> TokenLookup { get; }

    protected TokenizerBase(TokenizerData data, bool byteLevel)
    {
        ArgumentNullException.ThrowIfNull(data);
        data.Validate();
        Data = data;
        int n = data.Tokens.Length;
        _tokens = new string[n];
        _types = new TokenType[n];
        _tokenToId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            // llama.cpp renames empty tokens so they can never match text.
            _tokens[i] = data.Tokens[i].Length == 0 ? $"[EMPTY_{i}]" : data.Tokens[i];
            _types[i] = data.TokenTypes is null ? TokenType.Normal : (TokenType)data.TokenTypes[i];
            _tokenToId[_tokens[i]] = i; // later duplicates win, as in llama.cpp's token_to_id map
        }
        TokenLookup = _tokenToId.GetAlternateLookup<ReadOnlySpan<char>>();

        _endOfGeneration = new bool[n];
        if (data.EosId >= 0) _endOfGeneration[data.EosId] = true;
        foreach (int id in data.EogIds) if (id >= 0) _endOfGeneration[id] = true;
        foreach (var text in EndOfGenerationTexts)
        {
            if (!_tokenToId.TryGetValue(text, out int id)) continue;
            _endOfGeneration[id] = true;
            // llama.cpp treats these as control tokens even when the converter forgot to mark them.
            if (_types[id] != TokenType.Control) _types[id] = TokenType.Control;
        }
        var shown = new bool[n];
        if (_tokenToId.ContainsKey("<|return|>") && _tokenToId.ContainsKey("<|call|>"))
            foreach (var text in HarmonyMarkers)
            {
                if (!_tokenToId.TryGetValue(text, out int id)) continue;
                shown[id] = true;
                if (text == "<|end|>") _endOfGeneration[id] = false;
            }

        _pieces = new byte[n][];
        _specialPieces = new byte[n][];
        for (int i = 0; i < n; i++)
        {
            _specialPieces[i] = ComputePiece(i, byteLevel, renderSpecial: true);
            _pieces[i] = (_types[i] is TokenType.Control or TokenType.Unknown) && !shown[i] ? [] : _specialPieces[i];
        }
        _splitter = new SpecialTokenSplitter(_tokens, _types);
    }

    /// <summary>The resolved data this tokenizer was built from.</summary>
    public TokenizerData Data { get; }

    public int VocabSize => _tokens.Length;
    public int BosId => Data.BosId;
    public int EosId => Data.EosId;
    public int UnkId => Data.UnkId;
    public bool AddBos => Data.AddBos;
    public bool AddEos => Data.AddEos;
    public abstract bool StripsLeadingSpace { get; }

    public TokenType GetTokenType(int id) => _types[CheckId(id)];

    public bool IsEndOfGeneration(int id) => (uint)id < (uint)_endOfGeneration.Length && _endOfGeneration[id];

    public string TokenText(int id) => _tokens[CheckId(id)];

    /// <summary>The id of a token with exactly this vocabulary text, or -1.</summary>
    public int TokenId(string text) => _tokenToId.GetValueOrDefault(text, -1);

    public byte[] TokenBytes(int id) => (byte[])_pieces[CheckId(id)].Clone();

    public ReadOnlySpan<byte> TokenPiece(int id, bool renderSpecial = false) =>
        renderSpecial ? _specialPieces[CheckId(id)] : _pieces[CheckId(id)];

    public int[] Encode(string text, bool addSpecial, bool parseSpecial) => Encode(text, addSpecial, parseSpecial, []);

    public int[] EncodeContinuation(string text, bool parseSpecial) => Encode(text, addSpecial: false, parseSpecial, [], continues: true);

    public int[] Encode(string text, bool addSpecial, IReadOnlyList<TextRange> literalRanges)
    {
        CheckRanges(text, literalRanges);
        return Encode(text, addSpecial, parseSpecial: true, literalRanges);
    }

    public int[] EncodeContinuation(string text, IReadOnlyList<TextRange> literalRanges)
    {
        CheckRanges(text, literalRanges);
        return Encode(text, addSpecial: false, parseSpecial: true, literalRanges, continues: true);
    }

    private static void CheckRanges(string text, IReadOnlyList<TextRange> literalRanges)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(literalRanges);
        for (int i = 0; i < literalRanges.Count; i++)
        {
            var r = literalRanges[i];
            if (r.Start < 0 || r.Length < 0 || r.End > text.Length || (i > 0 && r.Start < literalRanges[i - 1].End))
                throw new ArgumentException($"literal range {i} ({r.Start}, length {r.Length}) is outside the text (length {text.Length}) or not after the previous one", nameof(literalRanges));
        }
    }

    private int[] Encode(string text, bool addSpecial, bool parseSpecial, IReadOnlyList<TextRange> literalRanges, bool continues = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 2 + 4);
        if (addSpecial && AddBos) output.Add(BosId);
        if (text.Length > 0)
        {
            // SPM adds its dummy-prefix space to the first text fragment and to any text right after a special token.
            bool afterSpecial = !continues;
            foreach (var f in _splitter.Split(text, parseSpecial, literalRanges))
            {
                if (f.IsToken) { output.Add(f.TokenId); afterSpecial = true; continue; }
                EncodeText(text.AsSpan(f.Start, f.Length), afterSpecial, output);
                afterSpecial = false;
            }
        }
        if (addSpecial && AddEos) output.Add(EosId);
        return output.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids) => Decode(ids, renderSpecial: false);

    public string Decode(ReadOnlySpan<int> ids, bool renderSpecial)
    {
        byte[][] pieces = renderSpecial ? _specialPieces : _pieces;
        int total = 0;
        foreach (int id in ids) total += pieces[CheckId(id, nameof(ids))].Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            int length = 0;
            bool first = true;
            foreach (int id in ids)
            {
                ReadOnlySpan<byte> piece = pieces[id];
                if (piece.IsEmpty) continue;
                if (first && StripsLeadingSpace && piece[0] == (byte)' ') piece = piece[1..];
                first = false;
                piece.CopyTo(buffer.AsSpan(length));
                length += piece.Length;
            }
            return Encoding.UTF8.GetString(buffer, 0, length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Tokenizes one run of text that contains no special tokens, appending ids to <paramref name="output"/>.</summary>
    protected abstract void EncodeText(ReadOnlySpan<char> text, bool afterSpecial, List<int> output);

    protected int CheckId(int id, string paramName = "id")
    {
        if ((uint)id >= (uint)_tokens.Length)
            throw new ArgumentOutOfRangeException(paramName, id, $"token id {id} is outside the vocabulary (0..{_tokens.Length - 1})");
        return id;
    }

    // llama.cpp's token_to_piece: user-defined (and, when rendering specials, control/unknown) tokens are
    // their text; normal tokens are unescaped ("▁" -> space) or, for byte-level BPE, mapped back to bytes;
    // byte tokens "<0xXX>" are that byte; unused/undefined tokens are nothing.
    private byte[] ComputePiece(int id, bool byteLevel, bool renderSpecial)
    {
        string text = _tokens[id];
        switch (_types[id])
        {
            case TokenType.Control or TokenType.Unknown:
                return renderSpecial ? Encoding.UTF8.GetBytes(text) : [];
            case TokenType.UserDefined:
                return Encoding.UTF8.GetBytes(text);
            case TokenType.Normal:
                return byteLevel ? Gpt2Unmap(text) : Encoding.UTF8.GetBytes(text.Replace('\u2581', ' '));
            case TokenType.Byte:
                if (TryParseByteToken(text, out byte b)) return [b];
                return byteLevel ? Gpt2Unmap(text) : Encoding.UTF8.GetBytes(text);
            default:
                return [];
        }
    }

    private static byte[] Gpt2Unmap(string text)
    {
        var bytes = new List<byte>(text.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < text.Length; i++)
        {
            if (Gpt2ByteMap.TryDecode(text[i], out byte b)) { bytes.Add(b); continue; }
            // Not a byte-mapped character (llama.cpp prints "[UNK_BYTE_0x..]" here): keep the character itself.
            int len = char.IsSurrogatePair(text, i)
                ? Encoding.UTF8.GetBytes(text.AsSpan(i++, 2), utf8)
                : Encoding.UTF8.GetBytes(text.AsSpan(i, 1), utf8);
            for (int k = 0; k < len; k++) bytes.Add(utf8[k]);
        }
        return bytes.ToArray();
    }

    /// <summary>Parses SentencePiece byte-token text "&lt;0xAB&gt;".</summary>
    internal static bool TryParseByteToken(string text, out byte value)
    {
        value = 0;
        if (text.Length != 6 || !text.StartsWith("<0x", StringComparison.Ordinal) || text[5] != '>') return false;
        return byte.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }
}
