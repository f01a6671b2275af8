using System.Buffers;
using System.Text;

namespace KvSharp.Tokenization;

/// <summary>
/// Byte-level BPE as llama.cpp's llm_tokenizer_bpe does it (tokenizer.ggml.model = "gpt2"): the text is split
/// into words by the <see cref="PreTokenizer"/>, each word's UTF-8 bytes become GPT-2 byte-mapped characters
/// (<see cref="Gpt2ByteMap"/>), and within a word the adjacent pair with the best (lowest) merge rank is
/// merged until no pair has a rank (ties: leftmost). Ranks are the order of <c>tokenizer.ggml.merges</c>.
/// </summary>
public sealed class BytePairTokenizer : TokenizerBase
{
    private readonly Dictionary<string, int> _ranks;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _rankLookup;

    public PreTokenizer PreTokenizer { get; }

    public BytePairTokenizer(TokenizerData data) : this(data, PreTokenizer.ForName(data.Pre)) { }

    public BytePairTokenizer(TokenizerData data, PreTokenizer preTokenizer) : base(data, byteLevel: true)
    {
        if (data.Model != "gpt2")
            throw new ArgumentException($"{data.Source}: BytePairTokenizer needs tokenizer.ggml.model = 'gpt2', got '{data.Model}'", nameof(data));
        PreTokenizer = preTokenizer;
        var merges = data.Merges!;
        _ranks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
        for (int i = 0; i < merges.Length; i++)
        {
            string merge = merges[i] ?? throw new InvalidDataException($"{data.Source}: tokenizer.ggml.merges[{i}] is null");
            // llama.cpp splits at the first space after the first character; byte-mapped text never contains
            // a real space, so "left right" itself is the key and lookups rebuild it from the two halves.
            if (merge.Length < 3 || merge.IndexOf(' ', 1) < 0)
                throw new InvalidDataException($"{data.Source}: tokenizer.ggml.merges[{i}] = '{merge}' is not of the form 'left right'");
            _ranks.TryAdd(merge, i); // the first occurrence wins, as with llama.cpp's emplace
        }
        _rankLookup = _ranks.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public override bool StripsLeadingSpace => false;

    // Lowest rank first, equal ranks leftmost first (llama.cpp's llm_bigram_bpe comparator), packed into one
    // ulong so the queue compares plain integers.
    private static ulong Priority(int rank, int left) => ((ulong)(uint)rank << 32) | (uint)left;

    protected override void EncodeText(ReadOnlySpan<char> text, bool afterSpecial, List<int> output)
    {
        var words = new List<(int Start, int Length)>();
        PreTokenizer.Split(text, words);
        var queue = new PriorityQueue<MergeCandidate, ulong>();
        byte[] bytes = ArrayPool<byte>.Shared.Rent(16);
        char[] mapped = ArrayPool<char>.Shared.Rent(16);
        char[] key = ArrayPool<char>.Shared.Rent(33);
        MergeSymbol[] symbols = ArrayPool<MergeSymbol>.Shared.Rent(16);
        try
        {
            foreach (var (start, length) in words)
            {
                var word = text.Slice(start, length);
                int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
                if (bytes.Length < maxBytes) Grow(ref bytes, maxBytes);
                if (mapped.Length < maxBytes) Grow(ref mapped, maxBytes);
                if (symbols.Length < maxBytes) Grow(ref symbols, maxBytes);
                if (key.Length < 2 * maxBytes + 1) Grow(ref key, 2 * maxBytes + 1);
                int n = Encoding.UTF8.GetBytes(word, bytes);
                for (int i = 0; i < n; i++) mapped[i] = Gpt2ByteMap.Encode(bytes[i]);
                EncodeWord(mapped.AsSpan(0, n), symbols, key, queue, output);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
            ArrayPool<char>.Shared.Return(mapped);
            ArrayPool<char>.Shared.Return(key);
            ArrayPool<MergeSymbol>.Shared.Return(symbols);
        }
    }

    private static void Grow<T>(ref T[] array, int size)
    {
        ArrayPool<T>.Shared.Return(array);
        array = ArrayPool<T>.Shared.Rent(size);
    }

    private void EncodeWord(ReadOnlySpan<char> word, MergeSymbol[] symbols, char[] key, PriorityQueue<MergeCandidate, ulong> queue, List<int> output)
    {
        if (word.IsEmpty) return;
        if (PreTokenizer.IgnoreMerges && TokenLookup.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }

        // Every byte-mapped character is a single BMP char, so one symbol per char is one per byte.
        int count = word.Length;
        for (int i = 0; i < count; i++)
            symbols[i] = new MergeSymbol { Start = i, Length = 1, Prev = i - 1, Next = i + 1 < count ? i + 1 : -1 };
        var ranker = new RankByMergeList(this, word, key);
        SymbolMerges.Run(symbols, count, queue, ref ranker);

        for (int i = 0; i != -1; i = symbols[i].Next)
        {
            var piece = word.Slice(symbols[i].Start, symbols[i].Length);
            if (TokenLookup.TryGetValue(piece, out int id)) { output.Add(id); continue; }
            // A merge whose result is not in the vocabulary (a broken vocab): emit what single characters exist,
            // as llama.cpp does, rather than fail.
            for (int k = 0; k < piece.Length; k++)
                if (TokenLookup.TryGetValue(piece.Slice(k, 1), out int single)) output.Add(single);
        }
    }

    /// <summary>A pair merges if "left right" is in the merge list; the earlier in the list, the sooner.</summary>
    private readonly ref struct RankByMergeList(BytePairTokenizer tokenizer, ReadOnlySpan<char> word, char[] key) : IMergeRanker
    {
        private readonly ReadOnlySpan<char> _word = word;

        public void TryQueue(MergeSymbol[] symbols, PriorityQueue<MergeCandidate, ulong> queue, int left, int right)
        {
            if (left < 0 || right < 0) return;
            var l = _word.Slice(symbols[left].Start, symbols[left].Length);
            var r = _word.Slice(symbols[right].Start, symbols[right].Length);
            l.CopyTo(key);
            key[l.Length] = ' ';
            r.CopyTo(key.AsSpan(l.Length + 1));
            if (!tokenizer._rankLookup.TryGetValue(key.AsSpan(0, l.Length + 1 + r.Length), out int rank)) return;
            queue.Enqueue(new MergeCandidate(left, right, l.Length + r.Length), Priority(rank, left));
        }
    }
}
