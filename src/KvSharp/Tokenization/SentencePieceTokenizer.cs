using System.Buffers;
using System.Text;

namespace KvSharp.Tokenization;

/// <summary>
/// SentencePiece-style BPE as llama.cpp's llm_tokenizer_spm does it (tokenizer.ggml.model = "llama"):
/// spaces become "▁" (plus one dummy-prefix "▁" at the start and after special tokens when add_space_prefix),
/// the text starts as one symbol per Unicode character, and the adjacent pair whose concatenation is the
/// highest-scoring vocabulary token is merged until no pair is a token (ties: leftmost). Characters that
/// never became a token fall back to their UTF-8 bytes as "&lt;0xXX&gt;" tokens, or to UNK without byte tokens.
/// </summary>
public sealed class SentencePieceTokenizer : TokenizerBase
{
    private const char SpaceMark = '\u2581'; // "▁"

    private readonly float[] _scores;
    private readonly int[] _byteTokens = new int[256];

    public SentencePieceTokenizer(TokenizerData data) : base(data, byteLevel: false)
    {
        if (data.Model != "llama")
            throw new ArgumentException($"{data.Source}: SentencePieceTokenizer needs tokenizer.ggml.model = 'llama', got '{data.Model}'", nameof(data));
        _scores = data.Scores ?? new float[data.Tokens.Length];
        for (int b = 0; b < 256; b++)
        {
            int id = TokenId($"<0x{b:X2}>");
            // llama.cpp's byte_to_token falls back to a token that is the byte itself (only meaningful for ASCII).
            if (id < 0 && b < 0x80) id = TokenId(((char)b).ToString());
            _byteTokens[b] = id;
        }
    }

    public bool AddSpacePrefix => Data.AddSpacePrefix;

    public override bool StripsLeadingSpace => Data.AddSpacePrefix;

    // Queue order: highest score first, equal scores leftmost first (llama.cpp's llm_bigram_spm comparator),
    // packed into one ulong so the queue compares plain integers: high half = score flipped so that larger
    // scores sort lower, low half = left symbol index.
    private static ulong Priority(float score, int left)
    {
        if (score == 0) score = 0; // -0 and +0 compare equal in C++
        int bits = BitConverter.SingleToInt32Bits(score);
        int ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF); // monotonic in the float value
        return ((ulong)((long)int.MaxValue - ordered) << 32) | (uint)left;
    }

    protected override void EncodeText(ReadOnlySpan<char> text, bool afterSpecial, List<int> output)
    {
        bool prefix = Data.AddSpacePrefix && afterSpecial;
        int n = text.Length + (prefix ? 1 : 0);
        char[] chars = ArrayPool<char>.Shared.Rent(n);
        MergeSymbol[] symbols = ArrayPool<MergeSymbol>.Shared.Rent(n);
        try
        {
            int w = 0;
            if (prefix) chars[w++] = SpaceMark;
            foreach (char c in text) chars[w++] = c == ' ' ? SpaceMark : c;
            var escaped = chars.AsSpan(0, n);

            // One symbol per code point (a surrogate pair is one character, as one UTF-8 sequence is in llama.cpp).
            int count = 0;
            for (int i = 0; i < n;)
            {
                int len = char.IsHighSurrogate(escaped[i]) && i + 1 < n && char.IsLowSurrogate(escaped[i + 1]) ? 2 : 1;
                symbols[count] = new MergeSymbol { Start = i, Length = len, Prev = count - 1, Next = i + len < n ? count + 1 : -1 };
                count++;
                i += len;
            }

            var queue = new PriorityQueue<MergeCandidate, ulong>(n);
            var ranker = new RankByScore(this, escaped);
            SymbolMerges.Run(symbols, count, queue, ref ranker);

            for (int i = count > 0 ? 0 : -1; i != -1; i = symbols[i].Next)
                Emit(escaped.Slice(symbols[i].Start, symbols[i].Length), output);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<MergeSymbol>.Shared.Return(symbols);
        }
    }

    /// <summary>A pair merges if the joined text is a token; the higher its score, the sooner.</summary>
    private readonly ref struct RankByScore(SentencePieceTokenizer tokenizer, ReadOnlySpan<char> text) : IMergeRanker
    {
        private readonly ReadOnlySpan<char> _text = text;

        public void TryQueue(MergeSymbol[] symbols, PriorityQueue<MergeCandidate, ulong> queue, int left, int right)
        {
            if (left < 0 || right < 0) return;
            int size = symbols[left].Length + symbols[right].Length;
            if (!tokenizer.TokenLookup.TryGetValue(_text.Slice(symbols[left].Start, size), out int id)) return;
            queue.Enqueue(new MergeCandidate(left, right, size), Priority(tokenizer._scores[id], left));
        }
    }

    // A final symbol is a token unless it is a single character the vocabulary lacks (merges only ever
    // produce tokens), so llama.cpp's rev_merge re-segmentation is never needed here.
    private void Emit(ReadOnlySpan<char> symbol, List<int> output)
    {
        if (TokenLookup.TryGetValue(symbol, out int id)) { output.Add(id); return; }
        Span<byte> utf8 = stackalloc byte[8];
        int len = Encoding.UTF8.GetBytes(symbol, utf8);
        for (int i = 0; i < len; i++)
        {
            int byteId = _byteTokens[utf8[i]];
            if (byteId >= 0) { output.Add(byteId); continue; }
            if (Data.UnkId < 0)
                throw new InvalidOperationException($"{Data.Source}: cannot encode '{symbol.ToString()}': the vocabulary has no byte token <0x{utf8[i]:X2}> and no unknown token");
            output.Add(Data.UnkId); // one UNK per character, like SentencePiece without byte fallback
            break;
        }
    }
}
