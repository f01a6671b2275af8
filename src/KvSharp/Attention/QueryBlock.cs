namespace KvSharp.Attention;

/// <summary>
/// The queries one attention call serves: <see cref="Tokens"/> consecutive tokens of one sequence, each with the
/// group of query heads that share one KV head. Token t sits at position FirstPosition + t and attends to
/// positions [0, FirstPosition + t] (the causal mask), so a block reads the cache below FirstPosition + Tokens.
/// Token t's heads are the consecutive rows at t x <see cref="Stride"/> of <see cref="Queries"/> and
/// <see cref="Output"/> (the forward pass's [token][query head][head_dim] layout, viewed from one group).
/// Query q = t x GroupSize + g names head g of token t.
/// </summary>
public readonly ref struct QueryBlock
{
    public ReadOnlySpan<float> Queries { get; }
    public Span<float> Output { get; }
    public int Tokens { get; }
    /// <summary>Floats from one token's first head to the next token's.</summary>
    public int Stride { get; }
    public int FirstPosition { get; }
    public int GroupSize { get; }
    public int HeadDim { get; }
    /// <summary>
    /// A sliding window (Gemma 2/3's local layers, Mistral-style): token t sees only the last Window positions up to its
    /// own, [FirstPosition + t - Window + 1, FirstPosition + t]; 0 for none.
    /// </summary>
    public int Window { get; init; }
    /// <summary>
    /// Logit soft-capping (Gemma 2): each score s (already scaled) becomes cap x tanh(s / cap) before the softmax; 0 for none.
    /// </summary>
    public float SoftCap { get; init; }
    /// <summary>
    /// Learned sink logits (gpt-oss's attn_sinks; not StreamingLLM's sink positions, which a cache policy keeps): one
    /// per head of the group (GroupSize), each joining its head's softmax as one more column with no value behind it;
    /// empty for none.
    /// </summary>
    public ReadOnlySpan<float> SinkLogits { get; init; }

    public QueryBlock(ReadOnlySpan<float> queries, Span<float> output, int tokens, int stride, int firstPosition,
        int groupSize, int headDim)
    {
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "a query block holds at least one token");
        if (groupSize < 1 || headDim < 1)
            throw new ArgumentOutOfRangeException(nameof(groupSize), $"group size {groupSize} and head_dim {headDim} must be positive");
        if (stride < groupSize * headDim)
            throw new ArgumentOutOfRangeException(nameof(stride), stride, $"tokens would overlap: a token's group is {groupSize * headDim} floats");
        if (firstPosition < 0) throw new ArgumentOutOfRangeException(nameof(firstPosition), firstPosition, "positions start at 0");
        // Window and SoftCap are set by initializer; a negative one is refused where it is used (CausalAttention).
        int span = (tokens - 1) * stride + groupSize * headDim;
        if (queries.Length < span || output.Length < span)
            throw new ArgumentException($"{tokens} tokens with stride {stride} need {span} floats; queries hold {queries.Length}, output {output.Length}");
        Queries = queries;
        Output = output;
        Tokens = tokens;
        Stride = stride;
        FirstPosition = firstPosition;
        GroupSize = groupSize;
        HeadDim = headDim;
    }

    /// <summary>One token's group attending to positions [0, <paramref name="end"/>) (a decode step).</summary>
    public static QueryBlock Single(ReadOnlySpan<float> queries, Span<float> output, int groupSize, int headDim, int end) =>
        new(queries, output, 1, groupSize * headDim, end - 1, groupSize, headDim);

    /// <summary>Queries in the block: Tokens x GroupSize.</summary>
    public int Count => Tokens * GroupSize;

    /// <summary>Positions below this are read: the last token's causal bound.</summary>
    public int End => FirstPosition + Tokens;

    /// <summary>The first position token <paramref name="token"/> of the block sees: 0, or where its sliding window starts.</summary>
    public int WindowStart(int token) => Window > 0 ? Math.Max(0, FirstPosition + token - Window + 1) : 0;

    /// <summary>Where query q's row starts in <see cref="Queries"/> and <see cref="Output"/>.</summary>
    public int RowOffset(int query) => query / GroupSize * Stride + query % GroupSize * HeadDim;

    /// <summary>Positions of the tile starting at <paramref name="tileStart"/> that query q attends to (at most TileSize).</summary>
    public int TileLength(int query, int tileStart) =>
        Math.Min(CausalAttention.TileSize, FirstPosition + query / GroupSize + 1 - tileStart);

    /// <summary>The first query that attends to <paramref name="position"/>: queries before it end earlier.</summary>
    public int FirstQuery(int position) => Math.Max(0, position - FirstPosition) * GroupSize;
}
