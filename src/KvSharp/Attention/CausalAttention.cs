using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Fused causal attention of a block of queries (consecutive tokens of one sequence, each with the query heads that
/// share a K/V head) over a cache, with an online softmax: keys are visited in tiles of <see cref="TileSize"/>
/// positions, each tile's scores live only in a small scratch buffer, and every query's running max / sum / output
/// are rescaled as tiles arrive — no full score matrix. Each key and value row of a tile is loaded once for all the
/// block's queries, which is what makes a long prefill cheap.
/// Tiles start at absolute positions that are multiples of <see cref="TileSize"/> and every query runs the same
/// sequence of operations whatever block it is in (its scores in <see cref="KeyScores.Dot"/>'s order, its own
/// softmax and value sums in key order), so a query's result has the same bits whether it is computed during a
/// batched prefill or a single-token decode: the cache modes give bit-identical logits.
/// Softmax weights use ggml's vectorized expf (<see cref="FastExp"/>, as ggml_vec_soft_max_f32); its scalar twin gives
/// the same bits lane by lane, so a weight never depends on where in the tile (vector body or tail) it falls.
/// </summary>
public static class CausalAttention
{
    public const int TileSize = 32;

    /// <summary>Scratch floats <see cref="Attend"/> needs for a block of <paramref name="queries"/> queries.</summary>
    public static int ScratchLength(int queries) => queries * (TileSize + 2);

    /// <summary>
    /// output[q] = softmax(query q · K[0..end(q))ᵀ · scale) · V[0..end(q)) for every query of the block.
    /// </summary>
    /// <param name="rows">Where the K/V head's key and value rows of each position are.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/>(block.Count) floats.</param>
    public static void Attend<TRows>(scoped in QueryBlock block, scoped in TRows rows, float scale, Span<float> scratch)
        where TRows : IKvRows<KvF32, KvF32>, allows ref struct =>
        Attend<TRows, KvF32, KvF32>(block, rows, scale, scratch);

    /// <summary><see cref="Attend{TRows, TKey, TValue}"/> with keys and values stored as the same type.</summary>
    public static void Attend<TRows, TKv>(scoped in QueryBlock block, scoped in TRows rows, float scale, Span<float> scratch)
        where TRows : IKvRows<TKv, TKv>, allows ref struct
        where TKv : struct, IKvElement<TKv> =>
        Attend<TRows, TKv, TKv>(block, rows, scale, scratch);

    /// <summary>
    /// <see cref="Attend{TRows}"/> over keys stored as <typeparamref name="TKey"/> and values as
    /// <typeparamref name="TValue"/>. Each side on its own: a block of up to the type's
    /// <see cref="IKvElement{TSelf}.MaxQueriesInRegisters"/> queries reads the stored rows directly, converting them in
    /// registers (F16 widened, Q8_0 as q x d); any other block, and every type without such loads, reads each tile of
    /// that side once into a per-thread float buffer (<see cref="IKvElement{TSelf}.Read"/>) and runs the float loads on
    /// it. Both give the floats the rows stand for exactly, so every pair of types computes what float rows holding
    /// those values compute, bit for bit, and every property of the float path (block and cache-mode invariance)
    /// carries over.
    /// </summary>
    public static void Attend<TRows, TKey, TValue>(scoped in QueryBlock block, scoped in TRows rows, float scale, Span<float> scratch)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        if (block.Window < 0 || block.SoftCap < 0 || !float.IsFinite(block.SoftCap))
            throw new ArgumentOutOfRangeException(nameof(block), $"window {block.Window} and soft cap {block.SoftCap} must be 0 (none) or positive");
        if (block.Window > 0 && (TKey.ViewDependsOnQuery || TValue.ViewDependsOnQuery))
            throw new NotSupportedException("a sliding-window layer cannot read KIVI rows (their view depends on the position they are read from)");
        int count = block.Count, group = block.GroupSize, headDim = block.HeadDim, width = group * headDim;
        if (scratch.Length < ScratchLength(count))
            throw new ArgumentException($"{count} queries need {ScratchLength(count)} scratch floats, got {scratch.Length}", nameof(scratch));
        ScratchParts(scratch, count, out Span<float> scores, out Span<float> runningMax, out Span<float> runningSum);
        runningMax.Fill(float.NegativeInfinity);
        runningSum.Clear();
        for (int t = 0; t < block.Tokens; t++) block.Output.Slice(t * block.Stride, width).Clear();

        var keys = new KvPlanes(ref Unsafe.AsRef(in rows.KeyOrigin), ref Unsafe.AsRef(in rows.KeySideOrigin));
        var values = new KvPlanes(ref Unsafe.AsRef(in rows.ValueOrigin), ref Unsafe.AsRef(in rows.ValueSideOrigin));
        bool widenKeys = count > TKey.MaxQueriesInRegisters(headDim) || (TKey.ReadsScaledDown && count * headDim > MaxScaledQueryFloats);
        bool widenValues = count > TValue.MaxQueriesInRegisters(headDim);
        // Keys read scaled down are scored against queries scaled up (a compact copy; a query too large for that to be
        // exact is scored from a tile of floats instead). The copy is a block of its own for the scores only, which
        // read queries and never write outputs.
        Span<float> scaledQueries = TKey.ReadsScaledDown && !widenKeys ? stackalloc float[count * headDim] : default;
        if (!scaledQueries.IsEmpty) widenKeys = !ScaleQueries<TKey>(block, scaledQueries);
        QueryBlock scoring = scaledQueries.IsEmpty || widenKeys ? block
            : new QueryBlock(scaledQueries, scaledQueries, block.Tokens, block.GroupSize * headDim, block.FirstPosition, block.GroupSize, headDim);
        // The tile's rows read into floats side by side: keys first, values TileSize rows later.
        Span<float> widened = widenKeys || widenValues ? WidenBuffer(2 * TileSize * headDim) : default;
        Span<nint> tileRows = stackalloc nint[TileSize], keyOffsets = stackalloc nint[TileSize], valueOffsets = stackalloc nint[TileSize];
        Span<nint> nextRows = stackalloc nint[TileSize];
        // Rows in short runs (a block each) end before the hardware prefetcher has learnt them, so the kernel asks for
        // them ahead: a tile that reads its stored rows asks a few at a time as it computes (TileAhead); one read into
        // floats first (or read per run of tokens, below) asks for the whole next tile now. Contiguous rows stream, except
        // a decode token's deep float rows (DeepFloatRows).
        bool spread = (TRows.ShortRuns || DeepFloatRows<TKey, TValue>(block))
            && !widenKeys && !widenValues && !TKey.ViewDependsOnQuery && !TValue.ViewDependsOnQuery;
        // Under a sliding window, tiles wholly before the first token's window are skipped: every later token's window
        // starts later still. Tiles stay at absolute multiples of TileSize, so a token computes the same tiles however
        // it is blocked (one before its own window is masked whole, which changes nothing: see FoldTile).
        int firstTile = block.WindowStart(0) / TileSize * TileSize;
        for (int tileStart = firstTile; tileStart < block.End; tileStart += TileSize)
        {
            int tileKeys = Math.Min(TileSize, block.End - tileStart), nextKeys = Math.Min(TileSize, block.End - tileStart - TileSize);
            Span<nint> rowIndices = tileRows[..tileKeys];
            // A spread tile found the rows of the tile after it already (they are what it asks for); the rest look them up.
            if (!spread || tileStart == firstTile) rows.RowOffsets(tileStart, rowIndices);
            if (spread)
            {
                Span<nint> next = nextRows[..Math.Max(0, nextKeys)];
                if (!next.IsEmpty) rows.RowOffsets(tileStart + TileSize, next);
                var ahead = new TileAhead<TKey, TValue>(keys, values, rowIndices, tileStart == firstTile, next, headDim);
                AttendTileAs<TKey, TValue>(block, scoring, keys, values, rowIndices, tileStart, int.MaxValue, scale, scores, runningMax, runningSum,
                    false, false, widened, keyOffsets[..tileKeys], valueOffsets[..tileKeys], ahead);
                Span<nint> done = tileRows;
                tileRows = nextRows;
                nextRows = done;
                continue;
            }
            if (TRows.ShortRuns && nextKeys > 0)
                PrefetchNextRuns<TRows, TKey, TValue>(rows, rowIndices[^1], tileStart + TileSize, nextKeys, keys, values, headDim);
            if (!TKey.ViewDependsOnQuery && !TValue.ViewDependsOnQuery)
            {
                AttendTileAs<TKey, TValue>(block, scoring, keys, values, rowIndices, tileStart, int.MaxValue, scale, scores, runningMax, runningSum,
                    widenKeys, widenValues, widened, keyOffsets[..tileKeys], valueOffsets[..tileKeys], default);
                continue;
            }
            // A type whose rows read differently for later queries (KIVI's groups turning quantized): the block's
            // tokens in runs that read the tile alike, each run a block of its own over the tile read as it sees it.
            // Every query still runs its own arithmetic in key order, so a run gives the bits the whole block would.
            int keySplit = TKey.ExactBefore(keys, tileStart, headDim), valueSplit = TValue.ExactBefore(values, tileStart, headDim);
            for (int t = Math.Max(0, tileStart - block.FirstPosition); t < block.Tokens;)
            {
                int position = block.FirstPosition + t, next = block.Tokens;
                if (keySplit > position) next = (int)Math.Min(next, (long)keySplit - block.FirstPosition);
                if (valueSplit > position) next = (int)Math.Min(next, (long)valueSplit - block.FirstPosition);
                int q0 = t * block.GroupSize, queries = (next - t) * block.GroupSize;
                AttendTileAs<TKey, TValue>(Tokens(block, t, next), Tokens(scoring, t, next), keys, values, rowIndices, tileStart, position, scale,
                    scores[(q0 * TileSize)..], runningMax.Slice(q0, queries), runningSum.Slice(q0, queries),
                    widenKeys, widenValues, widened, keyOffsets[..tileKeys], valueOffsets[..tileKeys], default);
                t = next;
            }
        }

        if (!block.SinkLogits.IsEmpty && block.SinkLogits.Length != group)
            throw new ArgumentException($"{block.SinkLogits.Length} sink logits for a group of {group} heads", nameof(block));
        for (int q = 0; q < count; q++)
            Normalize(block.Output.Slice(block.RowOffset(q), headDim), runningMax[q], runningSum[q], block.SinkLogits.IsEmpty ? null : block.SinkLogits[q % group]);
    }

    /// <summary>
    /// Divides a query's accumulated output by its softmax's denominator: the running sum, and where its head has a
    /// sink logit, exp(sink) as one more column. The larger of the sink and the running max is the softmax's max, as in
    /// ggml's flash attention, so neither exponent can overflow.
    /// </summary>
    private static void Normalize(Span<float> output, float runningMax, float runningSum, float? sink)
    {
        if (sink is not float s) Scale(output, 1f / runningSum);
        else if (s > runningMax)
        {
            float shift = MathF.Exp(runningMax - s);
            Scale(output, shift / (runningSum * shift + 1f));
        }
        else Scale(output, 1f / (runningSum + MathF.Exp(s - runningMax)));
    }

    /// <summary>
    /// The parts of a block's scratch (<see cref="ScratchLength"/>(count) floats): each query's scores of a tile
    /// (TileSize each), then the queries' running maxima, then their running sums.
    /// </summary>
    private static void ScratchParts(Span<float> scratch, int count, out Span<float> scores, out Span<float> runningMax, out Span<float> runningSum)
    {
        scores = scratch[..(count * TileSize)];
        runningMax = scratch.Slice(count * TileSize, count);
        runningSum = scratch.Slice(count * TileSize + count, count);
    }

    /// <summary>
    /// The most KV heads of a decode token with <paramref name="groupSize"/> query heads each that one
    /// <see cref="AttendHeads"/> call takes: any number where both sides are read in registers and alike for every
    /// query, as many as fit the scaled queries' stack copy where keys are read scaled down (F16), none otherwise.
    /// </summary>
    public static int MostHeadsTogether<TKey, TValue>(int groupSize, int headDim)
        where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue> =>
        TKey.ViewDependsOnQuery || TValue.ViewDependsOnQuery
        || groupSize > TKey.MaxQueriesInRegisters(headDim) || groupSize > TValue.MaxQueriesInRegisters(headDim) ? 0
        : TKey.ReadsScaledDown ? MaxScaledQueryFloats / (groupSize * headDim) : int.MaxValue;

    /// <summary>
    /// <see cref="Attend{TRows, TKey, TValue}"/> of one decode token (at <paramref name="position"/>) for
    /// <paramref name="heads"/> consecutive KV heads, tile by tile across the heads: every head folds in tile 0, then
    /// every head tile 1, and so on. Each head runs exactly the operations, in the order, that its own call would, so
    /// every output keeps its bits.
    /// </summary>
    /// <remarks>
    /// Why: a paged block holds a layer's heads one after another (4 KiB of F32 each at head_dim 64), so head by head
    /// the reads hop between short runs in different blocks, which the hardware prefetcher does not learn in time,
    /// while across the heads a tile's key (and value) rows are one long run per block.
    /// Head h's rows are head 0's (<paramref name="rows"/>) plus h x <paramref name="headRows"/>; its queries and
    /// outputs the h-th group of groupSize x headDim floats; its scratch <see cref="ScratchLength"/>(groupSize)
    /// floats at h x <paramref name="scratchStride"/>. At most <see cref="MostHeadsTogether"/> heads.
    /// </remarks>
    public static void AttendHeads<TRows, TKey, TValue>(ReadOnlySpan<float> queries, Span<float> output, int heads, int groupSize, int headDim,
        int position, scoped in TRows rows, nint headRows, float scale, Span<float> scratch, int scratchStride, ReadOnlySpan<float> sinkLogits = default)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        int width = groupSize * headDim, per = ScratchLength(groupSize), end = position + 1;
        if (heads > MostHeadsTogether<TKey, TValue>(groupSize, headDim))
            throw new ArgumentException($"{heads} heads of {groupSize} queries at head_dim {headDim} cannot be attended together as {TKey.Name}/{TValue.Name}");
        if (queries.Length < heads * width || output.Length < heads * width)
            throw new ArgumentException($"{heads} heads need {heads * width} query and output floats; got {queries.Length} and {output.Length}");
        if (!sinkLogits.IsEmpty && sinkLogits.Length != heads * groupSize)
            throw new ArgumentException($"{sinkLogits.Length} sink logits for {heads} heads of {groupSize} queries", nameof(sinkLogits));
        if (heads < 1 || scratchStride < per || scratch.Length < (heads - 1) * scratchStride + per)
            throw new ArgumentException($"{heads} heads need scratch of {per} floats every {scratchStride}, got {scratch.Length}", nameof(scratch));

        var keys = new KvPlanes(ref Unsafe.AsRef(in rows.KeyOrigin), ref Unsafe.AsRef(in rows.KeySideOrigin));
        var values = new KvPlanes(ref Unsafe.AsRef(in rows.ValueOrigin), ref Unsafe.AsRef(in rows.ValueSideOrigin));
        // Keys read scaled down are scored against queries scaled up, as in Attend; a head whose queries do not scale
        // exactly is scored from a tile of floats instead.
        Span<float> scaled = TKey.ReadsScaledDown ? stackalloc float[heads * width] : default;
        Span<bool> widenKeys = stackalloc bool[heads];
        bool anyWidened = false;
        for (int h = 0; h < heads; h++)
        {
            var block = HeadBlock(queries, output, h, groupSize, headDim, position);
            ScratchParts(scratch.Slice(h * scratchStride, per), groupSize, out _, out Span<float> runningMax, out Span<float> runningSum);
            runningMax.Fill(float.NegativeInfinity);
            runningSum.Clear();
            block.Output[..width].Clear();
            if (TKey.ReadsScaledDown) anyWidened |= widenKeys[h] = !ScaleQueries<TKey>(block, scaled.Slice(h * width, width));
        }
        Span<float> widened = anyWidened ? WidenBuffer(2 * TileSize * headDim) : default;
        Span<nint> tileRows = stackalloc nint[TileSize], nextTileRows = stackalloc nint[TileSize];
        // Heads after the first read their rows shifted by h x headRows, alternately into these two.
        Span<nint> oddHead = stackalloc nint[TileSize], evenHead = stackalloc nint[TileSize];
        Span<nint> keyOffsets = stackalloc nint[TileSize], valueOffsets = stackalloc nint[TileSize];
        rows.RowOffsets(0, tileRows[..Math.Min(TileSize, end)]);
        for (int tileStart = 0; tileStart < end; tileStart += TileSize)
        {
            int tileKeys = Math.Min(TileSize, end - tileStart), nextKeys = Math.Min(TileSize, end - tileStart - TileSize);
            if (nextKeys > 0) rows.RowOffsets(tileStart + TileSize, nextTileRows[..nextKeys]);
            ReadOnlySpan<nint> current = tileRows[..tileKeys];
            for (int h = 0; h < heads; h++)
            {
                // What the loop reads next: the next head's rows of this tile (the run right after these), or after the
                // last head the first head's rows of the next tile.
                ReadOnlySpan<nint> next = h + 1 < heads ? Offset(current, headRows, h % 2 == 0 ? oddHead : evenHead)
                    : nextTileRows[..Math.Max(0, nextKeys)];
                var block = HeadBlock(queries, output, h, groupSize, headDim, position);
                var scoring = TKey.ReadsScaledDown && !widenKeys[h]
                    ? new QueryBlock(scaled.Slice(h * width, width), scaled.Slice(h * width, width), 1, width, position, groupSize, headDim)
                    : block;
                ScratchParts(scratch.Slice(h * scratchStride, per), groupSize, out Span<float> scores, out Span<float> runningMax,
                    out Span<float> runningSum);
                var ahead = widenKeys[h] ? default
                    : new TileAhead<TKey, TValue>(keys, values, current, tileStart == 0 && h == 0, next, headDim);
                AttendTileAs<TKey, TValue>(block, scoring, keys, values, current, tileStart, int.MaxValue, scale, scores, runningMax, runningSum,
                    widenKeys[h], false, widened, keyOffsets[..tileKeys], valueOffsets[..tileKeys], ahead);
                current = next;
            }
            Span<nint> swap = tileRows;
            tileRows = nextTileRows;
            nextTileRows = swap;
        }

        for (int h = 0; h < heads; h++)
        {
            ScratchParts(scratch.Slice(h * scratchStride, per), groupSize, out _, out Span<float> runningMax, out Span<float> runningSum);
            for (int g = 0; g < groupSize; g++)
                Normalize(output.Slice(h * width + g * headDim, headDim), runningMax[g], runningSum[g], sinkLogits.IsEmpty ? null : sinkLogits[h * groupSize + g]);
        }
    }

    /// <summary>Head h's queries of a decode token, as a block of its own.</summary>
    private static QueryBlock HeadBlock(ReadOnlySpan<float> queries, Span<float> output, int h, int groupSize, int headDim, int position)
    {
        int width = groupSize * headDim;
        return new QueryBlock(queries.Slice(h * width, width), output.Slice(h * width, width), 1, width, position, groupSize, headDim);
    }

    /// <summary>to[j] = rows[j] + shift for every row; returns the filled part of <paramref name="to"/>.</summary>
    private static ReadOnlySpan<nint> Offset(ReadOnlySpan<nint> rows, nint shift, Span<nint> to)
    {
        for (int j = 0; j < rows.Length; j++) to[j] = rows[j] + shift;
        return to[..rows.Length];
    }

    /// <summary>
    /// Whether a decode token's contiguous rows are asked for a few at a time as a tile computes (<see cref="TileAhead{TKey, TValue}"/>),
    /// as paged rows are: F32 keys and values (read as stored, so bound by memory, not by conversions) of at least
    /// <see cref="DeepFloatPositions"/> positions. The hardware prefetcher alone left F32 decode attention at 1.5-1.85x
    /// a plain read of its rows on Zen 5 (`decode-attention 20 T 990:2048 f32 attend stream` in bench/KvSharp.Benchmarks).
    /// In one process, with a throwaway switch, time without over time with: 1.08x at depth 990 on one thread, 1.46x on
    /// two, 1.18x at 400, 1.44x at 640. Not below that depth, where the bench's rows stay in cache between passes (0.81x
    /// at 160 on one thread, 0.97x on two), nor for F16 or Q8_0 rows, bound by their conversions (0.93x and 0.84x at
    /// 990). Only a hint: no result changes.
    /// </summary>
    private static bool DeepFloatRows<TKey, TValue>(scoped in QueryBlock block)
        where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue> =>
        typeof(TKey) == typeof(KvF32) && typeof(TValue) == typeof(KvF32) && block.Tokens == 1 && block.End >= DeepFloatPositions;

    /// <summary>Positions from which <see cref="DeepFloatRows"/> holds (at 400 it measured 1.18x, at 160 0.81x).</summary>
    private const int DeepFloatPositions = 256;

    /// <summary>Tokens [<paramref name="from"/>, <paramref name="to"/>) of a block, as a block of their own.</summary>
    private static QueryBlock Tokens(scoped in QueryBlock block, int from, int to) =>
        new(block.Queries[(from * block.Stride)..], block.Output[(from * block.Stride)..], to - from, block.Stride, block.FirstPosition + from,
            block.GroupSize, block.HeadDim) { Window = block.Window, SoftCap = block.SoftCap, SinkLogits = block.SinkLogits };

    /// <summary>
    /// One tile folded into the block's queries: each side's rows as stored or as floats (read as a query at
    /// <paramref name="reader"/> reads them); the four pairings are four specialisations of one tile.
    /// </summary>
    private static void AttendTileAs<TKey, TValue>(scoped in QueryBlock block, scoped in QueryBlock scoring, scoped in KvPlanes keys,
        scoped in KvPlanes values, ReadOnlySpan<nint> rowIndices, int tileStart, int reader, float scale, Span<float> scores, Span<float> runningMax,
        Span<float> runningSum, bool widenKeys, bool widenValues, Span<float> widened, Span<nint> keyOffsets, Span<nint> valueOffsets,
        scoped in TileAhead<TKey, TValue> ahead)
        where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
    {
        int headDim = block.HeadDim;
        ReadOnlySpan<nint> keyAt = TileOffsets<TKey>(keys, rowIndices, TKey.RowBytes(headDim), headDim, widenKeys, widened, keyOffsets, reader);
        ReadOnlySpan<nint> valueAt = TileOffsets<TValue>(values, rowIndices, TValue.RowBytes(headDim), headDim, widenValues,
            widenValues ? widened[(TileSize * headDim)..] : default, valueOffsets, reader);
        ref byte widenedKeys = ref widened.IsEmpty ? ref Unsafe.NullRef<byte>() : ref Unsafe.As<float, byte>(ref widened[0]);
        ref byte widenedValues = ref widened.IsEmpty ? ref Unsafe.NullRef<byte>() : ref Unsafe.As<float, byte>(ref widened[TileSize * headDim]);
        if (!widenKeys && !widenValues)
            AttendTile<TKey, TValue>(block, scoring, ref keys.Elements, ref values.Elements, keyAt, valueAt, tileStart, scale, scores,
                runningMax, runningSum, keys, values, ahead);
        else if (widenKeys && widenValues)
            AttendTile<KvF32, KvF32>(block, block, ref widenedKeys, ref widenedValues, keyAt, valueAt, tileStart, scale, scores,
                runningMax, runningSum, default, default, default);
        else if (widenKeys)
            AttendTile<KvF32, TValue>(block, block, ref widenedKeys, ref values.Elements, keyAt, valueAt, tileStart, scale, scores,
                runningMax, runningSum, default, values, default);
        else
            AttendTile<TKey, KvF32>(block, scoring, ref keys.Elements, ref widenedValues, keyAt, valueAt, tileStart, scale, scores,
                runningMax, runningSum, keys, default, default);
    }

    /// <summary>
    /// The byte offsets at which a tile's rows of one side are read: from their planes (row index x row bytes), or,
    /// where that side is read from a tile of floats, from <paramref name="widened"/> after reading them into it.
    /// </summary>
    private static ReadOnlySpan<nint> TileOffsets<TKv>(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, nint rowBytes, int headDim,
        bool widen, Span<float> widened, Span<nint> offsets, int reader) where TKv : struct, IKvElement<TKv>
    {
        if (widen)
        {
            ReadRows<TKv>(planes, rows, headDim, widened, reader);
            for (int j = 0; j < offsets.Length; j++) offsets[j] = (nint)j * headDim * sizeof(float);
        }
        else
        {
            for (int j = 0; j < offsets.Length; j++) offsets[j] = rows[j] * rowBytes;
        }
        return offsets;
    }

    /// <summary>Most floats of scaled queries a block puts on the stack (four queries of head_dim 512, 8 KiB).</summary>
    private const int MaxScaledQueryFloats = 4 * 512;

    /// <summary>
    /// scaled[q x HeadDim..] = <see cref="IKvElement{TSelf}.ScaleUp"/>(query q) for each query of the block; false if
    /// some scaled element overflows (F16: |query element| &gt;= 2^16), where that product would not be exact.
    /// </summary>
    private static bool ScaleQueries<TKv>(scoped in QueryBlock block, Span<float> scaled) where TKv : struct, IKvElement<TKv>
    {
        int headDim = block.HeadDim;
        for (int q = 0; q < block.Count; q++)
        {
            ReadOnlySpan<float> query = block.Queries.Slice(block.RowOffset(q), headDim);
            Span<float> to = scaled.Slice(q * headDim, headDim);
            for (int i = 0; i < headDim; i++)
            {
                float x = TKv.ScaleUp(query[i]);
                if (float.IsInfinity(x)) return false;
                to[i] = x;
            }
        }
        return true;
    }

    /// <summary>
    /// One tile of keys and values (rows at the origins + byte offsets) folded into every query of the block: scores,
    /// the online-softmax step, then the weighted values. <paramref name="scoring"/> is the block whose queries
    /// the scores read: the block itself, or its queries scaled to match keys read scaled down. With rows to ask for
    /// (<paramref name="ahead"/>) the scores and sums go <see cref="TileAhead{TKey, TValue}.Lead"/> keys at a time,
    /// asking between steps; each query still scores every key alone and sums its values in key order, so the steps
    /// change no bit.
    /// </summary>
    private static void AttendTile<TKey, TValue>(scoped in QueryBlock block, scoped in QueryBlock scoring, ref byte keys, ref byte values,
        ReadOnlySpan<nint> keyOffsets, ReadOnlySpan<nint> offsets, int tileStart, float scale, Span<float> scores, Span<float> runningMax,
        Span<float> runningSum, scoped in KvPlanes keyPlanes, scoped in KvPlanes valuePlanes, scoped in TileAhead<TKey, TValue> ahead)
        where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
    {
        int count = block.Count, headDim = block.HeadDim, step = ahead.IsEmpty ? TileSize : TileAhead<TKey, TValue>.Lead;
        ahead.BeforeScoring();
        for (int j = 0; j < keyOffsets.Length; j += step)
        {
            KeyScores.Tile<TKey>(scoring, ref keys, keyOffsets.Slice(j, Math.Min(step, keyOffsets.Length - j)), tileStart + j, scale, scores[j..],
                keyPlanes);
            ahead.WhileScoring(j);
        }
        // Scores past a query's causal bound are capped too, and never read.
        if (block.SoftCap > 0) FloatOps.SoftCap(scores[..(count * TileSize)], block.SoftCap);
        if (block.Window > 0) MaskBeforeWindows(block, scores, tileStart);

        // Queries whose causal bound lies at or before this tile are done; the rest are a suffix of the block.
        int first = block.FirstQuery(tileStart);
        for (int q = first; q < count; q++)
            FoldTile(scores.Slice(q * TileSize, block.TileLength(q, tileStart)), ref runningMax[q], ref runningSum[q],
                block.Output.Slice(block.RowOffset(q), headDim));

        for (int j = 0; j < offsets.Length; j += step)
        {
            ahead.WhileSumming(j);
            SumValues<TValue>(block, ref values, offsets, scores, tileStart, first, j, Math.Min(step, offsets.Length - j), valuePlanes);
        }
    }

    /// <summary>
    /// Scores of positions before each query's sliding window set to -∞ (weight 0 after the softmax): token t's window
    /// starts at <see cref="QueryBlock.WindowStart"/>(t), later for later tokens.
    /// </summary>
    private static void MaskBeforeWindows(scoped in QueryBlock block, Span<float> scores, int tileStart)
    {
        for (int t = 0; t < block.Tokens; t++)
        {
            int masked = Math.Min(TileSize, block.WindowStart(t) - tileStart);
            if (masked <= 0) continue;
            for (int g = 0; g < block.GroupSize; g++) scores.Slice((t * block.GroupSize + g) * TileSize, masked).Fill(float.NegativeInfinity);
        }
    }

    /// <summary>
    /// The weighted values of keys [<paramref name="from"/>, from + <paramref name="keys"/>) of the tile added to each
    /// query's output, two queries at a time sharing each value row load; per query still in key order.
    /// </summary>
    private static void SumValues<TValue>(scoped in QueryBlock block, ref byte values, ReadOnlySpan<nint> offsets, Span<float> scores,
        int tileStart, int first, int from, int keys, scoped in KvPlanes valuePlanes) where TValue : struct, IKvElement<TValue>
    {
        int count = block.Count, headDim = block.HeadDim;
        ReadOnlySpan<nint> rows = offsets.Slice(from, keys);
        int p = first;
        for (; p + 2 <= count; p += 2)
        {
            // Query p is an earlier token of the block than p + 1, or the same one: it sees no more of the tile.
            int a = Math.Clamp(block.TileLength(p, tileStart) - from, 0, keys), b = Math.Clamp(block.TileLength(p + 1, tileStart) - from, 0, keys);
            if (a > 0)
                AccumulatePair<TValue>(block.Output.Slice(block.RowOffset(p), headDim), block.Output.Slice(block.RowOffset(p + 1), headDim),
                    ref values, rows, scores.Slice(p * TileSize + from, a), scores.Slice((p + 1) * TileSize + from, b), valuePlanes);
            else if (b > 0)
                AccumulateValues<TValue>(block.Output.Slice(block.RowOffset(p + 1), headDim), ref values, rows,
                    scores.Slice((p + 1) * TileSize + from, b), valuePlanes);
        }
        if (p < count)
        {
            int a = Math.Clamp(block.TileLength(p, tileStart) - from, 0, keys);
            if (a > 0)
                AccumulateValues<TValue>(block.Output.Slice(block.RowOffset(p), headDim), ref values, rows, scores.Slice(p * TileSize + from, a),
                    valuePlanes);
        }
    }

    // One buffer per thread for tiles read into floats: attention runs on kernel-pool threads, many items per thread,
    // and a buffer per item would be megabytes for a long prefill. Allocated once per thread, then reused.
    [ThreadStatic] private static float[]? t_widened;

    private static Span<float> WidenBuffer(int floats)
    {
        var buffer = t_widened;
        if (buffer == null || buffer.Length < floats) t_widened = buffer = new float[floats];
        return buffer.AsSpan(0, floats);
    }

    /// <summary>Row j of the output = the floats of the stored row rows[j] (<see cref="IKvElement{TSelf}.Read"/>).</summary>
    private static void ReadRows<TKv>(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, Span<float> output, int reader)
        where TKv : struct, IKvElement<TKv>
    {
        if (output.Length < rows.Length * headDim) throw new ArgumentException("the tile of floats does not fit", nameof(output));
        TKv.ReadRows(planes, rows, headDim, ref MemoryMarshal.GetReference(output), reader);
    }

    /// <summary>
    /// Finds the rows of the <paramref name="count"/> positions from <paramref name="start"/> and asks for them
    /// (<see cref="IKvElement{TSelf}.Prefetch"/>), all the key rows first and then all the value rows, except a run
    /// that goes on from row <paramref name="last"/> (already streaming).
    /// </summary>
    private static void PrefetchNextRuns<TRows, TKey, TValue>(scoped in TRows rows, nint last, int start, int count,
        scoped in KvPlanes keys, scoped in KvPlanes values, int headDim)
        where TRows : IKvRows<TKey, TValue>, allows ref struct
        where TKey : struct, IKvElement<TKey>
        where TValue : struct, IKvElement<TValue>
    {
        Span<nint> next = stackalloc nint[TileSize];
        next = next[..count];
        rows.RowOffsets(start, next);
        int first = 0;
        for (nint expected = last + 1; first < next.Length && next[first] == expected; first++, expected++) { }
        // In the order the tile reads them: its scores read every key row before its sums read any value row. Asking
        // for a block's keys then that block's values (one loop over runs) queues the next block's keys behind lines
        // needed only later; with that order paged decode (2,048 positions, AttentionBenchmarks) was 13-35% slower.
        PrefetchRows<TKey>(keys, next[first..], headDim);
        PrefetchRows<TValue>(values, next[first..], headDim);
    }

    /// <summary>
    /// <see cref="IKvElement{TSelf}.Prefetch"/> of the rows <paramref name="rows"/> one at a time, in order. One row per
    /// request, not one per run of rows: keys first but one request per 16-row run (4 KiB of F32) measured 4.9 ms
    /// against 3.9 ms row by row for F32 (F16 within noise), for the same lines in the same order; why is not known.
    /// </summary>
    internal static void PrefetchRows<TKv>(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim)
        where TKv : struct, IKvElement<TKv>
    {
        nint rowBytes = TKv.RowBytes(headDim), sideBytes = TKv.SideBytes(headDim);
        foreach (nint row in rows)
            TKv.Prefetch(ref Unsafe.Add(ref planes.Elements, row * rowBytes), ref Unsafe.Add(ref planes.Side, row * sideBytes), 1, headDim);
    }

    /// <summary>
    /// output[g] = softmax(q[g] · K[0..end)ᵀ · scale) · V[0..end) for each head g of one token's group.
    /// </summary>
    /// <param name="queries">groupSize rows of headDim (the group's query heads, consecutive).</param>
    /// <param name="end">Attend to positions [0, end): the causal mask is the bound itself.</param>
    /// <param name="output">groupSize rows of headDim.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/>(groupSize) floats.</param>
    public static void AttendGroup<TRows>(ReadOnlySpan<float> queries, scoped in TRows rows,
        int headDim, int groupSize, int end, float scale, Span<float> output, Span<float> scratch)
        where TRows : IKvRows<KvF32, KvF32>, allows ref struct =>
        Attend<TRows, KvF32, KvF32>(QueryBlock.Single(queries, output, groupSize, headDim, end), rows, scale, scratch);

    /// <summary>
    /// Online softmax step of one query: folds this tile's scores into its running max and sum, turning the scores
    /// into weights exp(s - max) in place, and rescales the output accumulated over earlier tiles.
    /// </summary>
    private static void FoldTile(Span<float> s, ref float runningMax, ref float runningSum, Span<float> output)
    {
        float newMax = MathF.Max(runningMax, Max(s));
        // Nothing seen yet and this tile wholly before the query's window: it must leave the query as it was (weights 0,
        // max, sum and output untouched), so a token gives the same bits whether its block began tiles earlier or not.
        if (float.IsNegativeInfinity(newMax))
        {
            s.Clear();
            return;
        }
        float correction = MathF.Exp(runningMax - newMax);
        runningSum = ExpSum(s, newMax, runningSum * correction);
        runningMax = newMax;
        if (correction != 1f) Scale(output, correction);
    }

    /// <summary>
    /// The largest of <paramref name="s"/> (or -∞): an IEEE maximum, which has one answer whatever the order of
    /// comparison (+0 above -0, NaN if any is NaN), so eight lanes at a time give the sequential loop's bits.
    /// </summary>
    private static float Max(ReadOnlySpan<float> s)
    {
        int j = 0;
        float max = float.NegativeInfinity;
        if (Vector256.IsHardwareAccelerated && s.Length >= 8)
        {
            ref float p = ref MemoryMarshal.GetReference(s);
            Vector256<float> m = Vector256.LoadUnsafe(ref p);
            for (j = 8; j <= s.Length - 8; j += 8) m = Vector256.Max(m, Vector256.LoadUnsafe(ref p, (nuint)j));
            for (int lane = 0; lane < 8; lane++) max = MathF.Max(max, m[lane]);
        }
        for (; j < s.Length; j++) max = MathF.Max(max, s[j]);
        return max;
    }

    /// <summary>s[j] = exp(s[j] - max) in place; returns <paramref name="sum"/> plus the new values, added in index order.</summary>
    private static float ExpSum(Span<float> s, float max, float sum)
    {
        Exp(s, max);
        return Sum(s, sum);
    }

    /// <summary>start + s[0] + s[1] + ... in index order; kept out of line so the running sum stays in a register.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Sum(ReadOnlySpan<float> s, float start)
    {
        foreach (float x in s) start += x;
        return start;
    }

    private static void Exp(Span<float> s, float max)
    {
        int j = 0;
        if (Avx2.IsSupported && Fma.IsSupported)
        {
            ref float p = ref MemoryMarshal.GetReference(s);
            for (; j <= s.Length - 8; j += 8)
                FastExp.Avx2Exp(Vector256.LoadUnsafe(ref p, (nuint)j) - Vector256.Create(max)).StoreUnsafe(ref p, (nuint)j);
        }
        for (; j < s.Length; j++) s[j] = FastExp.Scalar(s[j] - max);
    }

    /// <summary>
    /// acc += p[j] * V[row j] for every j, one FMA per element per key in key order (the same arithmetic as a
    /// key-by-key loop); the accumulator stays in registers 64 columns at a time instead of going through memory.
    /// Rows read scaled down (F16) take the weight scaled up to match (<see cref="IKvElement{TSelf}.ScaleUp"/>), 16
    /// columns at a time in the lanes <see cref="IKvElement{TSelf}.LoadValues16"/> leaves them, the accumulators moved
    /// into those lanes for the tile: each FMA rounds the same exact product and sum as with float rows.
    /// Row j starts at valueOrigin + rows[j] bytes; column c of it at RowBytes(c) from there (types read in registers
    /// store each element in a whole number of bytes).
    /// Never inlined (nor <see cref="AccumulatePair{TKv}"/>): with tiered PGO the Tier1 AttendTile / AttendTileAs of
    /// F16 rows took these bodies in, ran out of inlining budget and left <see cref="SwapInnerHalves{TKv}"/> and even
    /// <see cref="IKvElement{TSelf}.LoadValues16"/> inside the key loop as calls, the accumulators on the stack (same
    /// bits; about 1.3x slower F16 decode attention). One call per query and tile is nothing against that.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AccumulateValues<TKv>(Span<float> acc, ref byte valueOrigin, ReadOnlySpan<nint> rows, ReadOnlySpan<float> p,
        scoped in KvPlanes valuePlanes) where TKv : struct, IKvElement<TKv>
    {
        int c = 0, keys = p.Length;
        if (rows.Length < keys) throw new ArgumentException("one row per weight", nameof(rows));
        ref float a = ref MemoryMarshal.GetReference(acc);
        ref nint row = ref MemoryMarshal.GetReference(rows);
        ref float weight = ref MemoryMarshal.GetReference(p);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 64 <= acc.Length; c += 64)
            {
                Vector256<float> a0 = Vector256.LoadUnsafe(ref a, (nuint)c), a1 = Vector256.LoadUnsafe(ref a, (nuint)c + 8);
                Vector256<float> a2 = Vector256.LoadUnsafe(ref a, (nuint)c + 16), a3 = Vector256.LoadUnsafe(ref a, (nuint)c + 24);
                Vector256<float> a4 = Vector256.LoadUnsafe(ref a, (nuint)c + 32), a5 = Vector256.LoadUnsafe(ref a, (nuint)c + 40);
                Vector256<float> a6 = Vector256.LoadUnsafe(ref a, (nuint)c + 48), a7 = Vector256.LoadUnsafe(ref a, (nuint)c + 56);
                SwapInnerHalves<TKv>(ref a0, ref a1, ref a2, ref a3);
                SwapInnerHalves<TKv>(ref a4, ref a5, ref a6, ref a7);
                for (int j = 0; j < keys; j++)
                {
                    ref byte v = ref Unsafe.Add(ref valueOrigin, Unsafe.Add(ref row, j) + TKv.RowBytes(c));
                    Vector256<float> pj = Vector256.Create(TKv.ScaleUp(Unsafe.Add(ref weight, j)));
                    TKv.LoadValues16(ref v, 0, valuePlanes, out Vector256<float> v0, out Vector256<float> v1);
                    a0 = Vector256.FusedMultiplyAdd(v0, pj, a0);
                    a1 = Vector256.FusedMultiplyAdd(v1, pj, a1);
                    TKv.LoadValues16(ref v, 16, valuePlanes, out v0, out v1);
                    a2 = Vector256.FusedMultiplyAdd(v0, pj, a2);
                    a3 = Vector256.FusedMultiplyAdd(v1, pj, a3);
                    TKv.LoadValues16(ref v, 32, valuePlanes, out v0, out v1);
                    a4 = Vector256.FusedMultiplyAdd(v0, pj, a4);
                    a5 = Vector256.FusedMultiplyAdd(v1, pj, a5);
                    TKv.LoadValues16(ref v, 48, valuePlanes, out v0, out v1);
                    a6 = Vector256.FusedMultiplyAdd(v0, pj, a6);
                    a7 = Vector256.FusedMultiplyAdd(v1, pj, a7);
                }
                SwapInnerHalves<TKv>(ref a0, ref a1, ref a2, ref a3);
                SwapInnerHalves<TKv>(ref a4, ref a5, ref a6, ref a7);
                a0.StoreUnsafe(ref a, (nuint)c); a1.StoreUnsafe(ref a, (nuint)c + 8);
                a2.StoreUnsafe(ref a, (nuint)c + 16); a3.StoreUnsafe(ref a, (nuint)c + 24);
                a4.StoreUnsafe(ref a, (nuint)c + 32); a5.StoreUnsafe(ref a, (nuint)c + 40);
                a6.StoreUnsafe(ref a, (nuint)c + 48); a7.StoreUnsafe(ref a, (nuint)c + 56);
            }
            for (; c + 8 <= acc.Length; c += 8)
            {
                Vector256<float> a0 = Vector256.LoadUnsafe(ref a, (nuint)c);
                for (int j = 0; j < keys; j++)
                    a0 = Vector256.FusedMultiplyAdd(TKv.Load8(ref Unsafe.Add(ref valueOrigin, Unsafe.Add(ref row, j) + TKv.RowBytes(c)), 0, valuePlanes),
                        Vector256.Create(TKv.ScaleUp(Unsafe.Add(ref weight, j))), a0);
                a0.StoreUnsafe(ref a, (nuint)c);
            }
        }
        for (; c < acc.Length; c++)
        {
            float a0 = acc[c];
            for (int j = 0; j < keys; j++)
                a0 = MathF.FusedMultiplyAdd(TKv.Load1(ref Unsafe.Add(ref valueOrigin, Unsafe.Add(ref row, j) + TKv.RowBytes(c)), 0, valuePlanes),
                    TKv.ScaleUp(Unsafe.Add(ref weight, j)), a0);
            acc[c] = a0;
        }
    }

    /// <summary>
    /// <see cref="AccumulateValues{T}"/> for two queries at once, <paramref name="pa"/> no longer than <paramref name="pb"/>
    /// (an earlier token of the block, or the same one): 32 columns of both accumulators stay in registers, and each
    /// value vector loaded feeds an FMA of each; each element still sees one FMA per key in key order.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AccumulatePair<TKv>(Span<float> accA, Span<float> accB, ref byte valueOrigin, ReadOnlySpan<nint> rows,
        ReadOnlySpan<float> pa, ReadOnlySpan<float> pb, scoped in KvPlanes valuePlanes) where TKv : struct, IKvElement<TKv>
    {
        int c = 0, both = pa.Length, keys = pb.Length;
        if (both > keys || rows.Length < keys || accA.Length != accB.Length) throw new ArgumentException("the shorter query first, one row per weight");
        ref float a = ref MemoryMarshal.GetReference(accA), b = ref MemoryMarshal.GetReference(accB);
        ref nint row = ref MemoryMarshal.GetReference(rows);
        ref float wa = ref MemoryMarshal.GetReference(pa), wb = ref MemoryMarshal.GetReference(pb);
        if (Vector256.IsHardwareAccelerated)
            for (; c + 32 <= accA.Length; c += 32)
            {
                Vector256<float> a0 = Vector256.LoadUnsafe(ref a, (nuint)c), a1 = Vector256.LoadUnsafe(ref a, (nuint)c + 8);
                Vector256<float> a2 = Vector256.LoadUnsafe(ref a, (nuint)c + 16), a3 = Vector256.LoadUnsafe(ref a, (nuint)c + 24);
                Vector256<float> b0 = Vector256.LoadUnsafe(ref b, (nuint)c), b1 = Vector256.LoadUnsafe(ref b, (nuint)c + 8);
                Vector256<float> b2 = Vector256.LoadUnsafe(ref b, (nuint)c + 16), b3 = Vector256.LoadUnsafe(ref b, (nuint)c + 24);
                SwapInnerHalves<TKv>(ref a0, ref a1, ref a2, ref a3);
                SwapInnerHalves<TKv>(ref b0, ref b1, ref b2, ref b3);
                int j = 0;
                for (; j < both; j++)
                {
                    ref byte v = ref Unsafe.Add(ref valueOrigin, Unsafe.Add(ref row, j) + TKv.RowBytes(c));
                    TKv.LoadValues16(ref v, 0, valuePlanes, out Vector256<float> v0, out Vector256<float> v1);
                    TKv.LoadValues16(ref v, 16, valuePlanes, out Vector256<float> v2, out Vector256<float> v3);
                    Vector256<float> pja = Vector256.Create(TKv.ScaleUp(Unsafe.Add(ref wa, j)));
                    Vector256<float> pjb = Vector256.Create(TKv.ScaleUp(Unsafe.Add(ref wb, j)));
                    a0 = Vector256.FusedMultiplyAdd(v0, pja, a0);
                    a1 = Vector256.FusedMultiplyAdd(v1, pja, a1);
                    a2 = Vector256.FusedMultiplyAdd(v2, pja, a2);
                    a3 = Vector256.FusedMultiplyAdd(v3, pja, a3);
                    b0 = Vector256.FusedMultiplyAdd(v0, pjb, b0);
                    b1 = Vector256.FusedMultiplyAdd(v1, pjb, b1);
                    b2 = Vector256.FusedMultiplyAdd(v2, pjb, b2);
                    b3 = Vector256.FusedMultiplyAdd(v3, pjb, b3);
                }
                for (; j < keys; j++)
                {
                    ref byte v = ref Unsafe.Add(ref valueOrigin, Unsafe.Add(ref row, j) + TKv.RowBytes(c));
                    Vector256<float> pjb = Vector256.Create(TKv.ScaleUp(Unsafe.Add(ref wb, j)));
                    TKv.LoadValues16(ref v, 0, valuePlanes, out Vector256<float> v0, out Vector256<float> v1);
                    TKv.LoadValues16(ref v, 16, valuePlanes, out Vector256<float> v2, out Vector256<float> v3);
                    b0 = Vector256.FusedMultiplyAdd(v0, pjb, b0);
                    b1 = Vector256.FusedMultiplyAdd(v1, pjb, b1);
                    b2 = Vector256.FusedMultiplyAdd(v2, pjb, b2);
                    b3 = Vector256.FusedMultiplyAdd(v3, pjb, b3);
                }
                SwapInnerHalves<TKv>(ref a0, ref a1, ref a2, ref a3);
                SwapInnerHalves<TKv>(ref b0, ref b1, ref b2, ref b3);
                a0.StoreUnsafe(ref a, (nuint)c); a1.StoreUnsafe(ref a, (nuint)c + 8);
                a2.StoreUnsafe(ref a, (nuint)c + 16); a3.StoreUnsafe(ref a, (nuint)c + 24);
                b0.StoreUnsafe(ref b, (nuint)c); b1.StoreUnsafe(ref b, (nuint)c + 8);
                b2.StoreUnsafe(ref b, (nuint)c + 16); b3.StoreUnsafe(ref b, (nuint)c + 24);
            }
        if (c < accA.Length)
        {
            // The remaining columns one query at a time: shifting the origin by c columns makes every row start at
            // column c. (Q8_0 rows read their scales by address, which the shift keeps.)
            AccumulateValues<TKv>(accA[c..], ref Unsafe.Add(ref valueOrigin, TKv.RowBytes(c)), rows, pa, valuePlanes);
            AccumulateValues<TKv>(accB[c..], ref Unsafe.Add(ref valueOrigin, TKv.RowBytes(c)), rows, pb, valuePlanes);
        }
    }

    /// <summary><see cref="IKvElement{TSelf}.SwapInnerHalves"/> of two 16-column accumulator pairs (x0, x1) and (x2, x3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SwapInnerHalves<TKv>(ref Vector256<float> x0, ref Vector256<float> x1, ref Vector256<float> x2,
        ref Vector256<float> x3) where TKv : struct, IKvElement<TKv>
    {
        TKv.SwapInnerHalves(ref x0, ref x1);
        TKv.SwapInnerHalves(ref x2, ref x3);
    }

    private static void Scale(Span<float> x, float factor)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float p = ref MemoryMarshal.GetReference(x);
            for (; i <= x.Length - 8; i += 8)
                (Vector256.LoadUnsafe(ref p, (nuint)i) * Vector256.Create(factor)).StoreUnsafe(ref p, (nuint)i);
        }
        for (; i < x.Length; i++) x[i] *= factor;
    }
}
