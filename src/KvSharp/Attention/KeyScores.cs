using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// The scores of one tile: query · key x scale for every query of a block and every key of the tile it attends to.
/// Every score has exactly <see cref="Dot"/>'s bits — the same FMAs in the same order and the same horizontal sum —
/// however many queries and keys are computed side by side, so a query's scores never depend on its block. Keys are
/// read in registers by their type's loads (<see cref="IKvElement{TSelf}.Load16"/>); a type read scaled down (F16: a
/// half widened to its value x 2^-112) is scored by a block holding its queries scaled up to match (x 2^112): each
/// product, and so each score, is exactly the float one.
/// </summary>
internal static class KeyScores
{
    /// <summary>Eight keys at a time share each query load; needs FMA and a head_dim of whole 8-float vectors.</summary>
    private static bool EightAtATime(int headDim) => Vector256.IsHardwareAccelerated && Fma.IsSupported && headDim % 8 == 0;

    /// <summary>
    /// scores[q x TileSize + j] = Dot<TKv>(query q, key row offsets[j]) x scale for each query of the block whose causal
    /// bound passes key tileStart + j (scores a little past a query's bound may be written too; they are never read).
    /// </summary>
    public static void Tile<TKv>(scoped in QueryBlock block, ref byte keyOrigin, ReadOnlySpan<nint> offsets, int tileStart,
        float scale, Span<float> scores, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        int headDim = block.HeadDim, tiles = CausalAttention.TileSize;
        ref float score0 = ref MemoryMarshal.GetReference(scores);
        int j = 0;
        if (EightAtATime(headDim))
            for (; j + 8 <= offsets.Length; j += 8)
                ScoreEight<TKv>(block, ref keyOrigin, offsets.Slice(j, 8), block.FirstQuery(tileStart + j), scale, ref Unsafe.Add(ref score0, j), keyPlanes);
        for (; j < offsets.Length; j++)
        {
            ref byte key = ref Unsafe.Add(ref keyOrigin, offsets[j]);
            for (int q = block.FirstQuery(tileStart + j); q < block.Count; q++)
                scores[q * tiles + j] = Dot<TKv>(block.Queries.Slice(block.RowOffset(q), headDim), ref key, keyPlanes) * scale;
        }
    }

    /// <summary>
    /// Eight keys against queries firstQuery.. of the block, two queries at a time: each pass loads two query and four
    /// key vectors for eight FMAs, and the eight horizontal sums are done together in one transpose, each in exactly
    /// <see cref="Dot"/>'s order. A last odd query runs against all eight keys at once. Columns go 16 at a time (two
    /// FMAs per accumulator, in column order) so a Half key is widened a whole 256-bit load at a time. Rows longer than
    /// two cache lines are read whole, one after another, by the first pair and the odd query (the reads that come from
    /// memory; later pairs find the keys in L1): <see cref="ReadRowByRow"/>.
    /// </summary>
    /// <remarks>
    /// Never inlined into <see cref="Tile{TKv}"/>: with tiered PGO the Tier1 Tile&lt;KvF16&gt; took this whole body in, ran
    /// out of inlining budget and left <see cref="SumEight"/>, <see cref="HorizontalSum"/> and the Half loads as calls,
    /// vectors passed through the stack (same bits, no result test sees it). Compiled on its own every helper inlines.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ScoreEight<TKv>(scoped in QueryBlock block, ref byte keyOrigin, ReadOnlySpan<nint> keys, int firstQuery,
        float scale, ref float scores, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        int headDim = block.HeadDim, tiles = CausalAttention.TileSize;
        ref byte k0 = ref Unsafe.Add(ref keyOrigin, keys[0]), k1 = ref Unsafe.Add(ref keyOrigin, keys[1]);
        ref byte k2 = ref Unsafe.Add(ref keyOrigin, keys[2]), k3 = ref Unsafe.Add(ref keyOrigin, keys[3]);
        ref byte k4 = ref Unsafe.Add(ref keyOrigin, keys[4]), k5 = ref Unsafe.Add(ref keyOrigin, keys[5]);
        ref byte k6 = ref Unsafe.Add(ref keyOrigin, keys[6]), k7 = ref Unsafe.Add(ref keyOrigin, keys[7]);
        ref float query0 = ref MemoryMarshal.GetReference(block.Queries);
        Vector256<float> scaleVector = Vector256.Create(scale);
        int q = firstQuery;
        for (; q + 2 <= block.Count; q += 2)
        {
            ref float qa = ref Unsafe.Add(ref query0, block.RowOffset(q));
            ref float qb = ref Unsafe.Add(ref query0, block.RowOffset(q + 1));
            ref float sa = ref Unsafe.Add(ref scores, q * tiles);
            ref float sb = ref Unsafe.Add(ref sa, tiles);
            bool byRow = q == firstQuery && block.Tokens == 1 && ReadRowByRow<TKv>(headDim);
            Vector256<float> s = (byRow ? TwoByFourByRow<TKv>(ref qa, ref qb, ref k0, ref k1, ref k2, ref k3, headDim, keyPlanes)
                : TwoByFour<TKv>(ref qa, ref qb, ref k0, ref k1, ref k2, ref k3, headDim, keyPlanes)) * scaleVector;
            s.GetLower().StoreUnsafe(ref sa);
            s.GetUpper().StoreUnsafe(ref sb);
            s = (byRow ? TwoByFourByRow<TKv>(ref qa, ref qb, ref k4, ref k5, ref k6, ref k7, headDim, keyPlanes)
                : TwoByFour<TKv>(ref qa, ref qb, ref k4, ref k5, ref k6, ref k7, headDim, keyPlanes)) * scaleVector;
            s.GetLower().StoreUnsafe(ref sa, 4);
            s.GetUpper().StoreUnsafe(ref sb, 4);
        }
        if (q < block.Count && block.Tokens == 1 && ReadRowByRow<TKv>(headDim))
        {
            ref float qa = ref Unsafe.Add(ref query0, block.RowOffset(q));
            Vector256<float> a0 = Lanes<TKv>(ref qa, ref k0, headDim, keyPlanes), a1 = Lanes<TKv>(ref qa, ref k1, headDim, keyPlanes);
            Vector256<float> a2 = Lanes<TKv>(ref qa, ref k2, headDim, keyPlanes), a3 = Lanes<TKv>(ref qa, ref k3, headDim, keyPlanes);
            Vector256<float> a4 = Lanes<TKv>(ref qa, ref k4, headDim, keyPlanes), a5 = Lanes<TKv>(ref qa, ref k5, headDim, keyPlanes);
            Vector256<float> a6 = Lanes<TKv>(ref qa, ref k6, headDim, keyPlanes), a7 = Lanes<TKv>(ref qa, ref k7, headDim, keyPlanes);
            (SumEight(a0, a1, a2, a3, a4, a5, a6, a7) * scaleVector).StoreUnsafe(ref Unsafe.Add(ref scores, q * tiles));
        }
        else if (q < block.Count)
        {
            ref float qa = ref Unsafe.Add(ref query0, block.RowOffset(q));
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            nuint i = 0;
            for (; i + 16 <= (nuint)headDim; i += 16)
            {
                Vector256<float> qv = Vector256.LoadUnsafe(ref qa, i), qw = Vector256.LoadUnsafe(ref qa, i + 8);
                a0 = TwoSteps<TKv>(qv, qw, ref k0, i, a0, keyPlanes);
                a1 = TwoSteps<TKv>(qv, qw, ref k1, i, a1, keyPlanes);
                a2 = TwoSteps<TKv>(qv, qw, ref k2, i, a2, keyPlanes);
                a3 = TwoSteps<TKv>(qv, qw, ref k3, i, a3, keyPlanes);
                a4 = TwoSteps<TKv>(qv, qw, ref k4, i, a4, keyPlanes);
                a5 = TwoSteps<TKv>(qv, qw, ref k5, i, a5, keyPlanes);
                a6 = TwoSteps<TKv>(qv, qw, ref k6, i, a6, keyPlanes);
                a7 = TwoSteps<TKv>(qv, qw, ref k7, i, a7, keyPlanes);
            }
            if (i < (nuint)headDim)
            {
                Vector256<float> qv = Vector256.LoadUnsafe(ref qa, i);
                a0 = Fma.MultiplyAdd(qv, TKv.Load8(ref k0, i, keyPlanes), a0);
                a1 = Fma.MultiplyAdd(qv, TKv.Load8(ref k1, i, keyPlanes), a1);
                a2 = Fma.MultiplyAdd(qv, TKv.Load8(ref k2, i, keyPlanes), a2);
                a3 = Fma.MultiplyAdd(qv, TKv.Load8(ref k3, i, keyPlanes), a3);
                a4 = Fma.MultiplyAdd(qv, TKv.Load8(ref k4, i, keyPlanes), a4);
                a5 = Fma.MultiplyAdd(qv, TKv.Load8(ref k5, i, keyPlanes), a5);
                a6 = Fma.MultiplyAdd(qv, TKv.Load8(ref k6, i, keyPlanes), a6);
                a7 = Fma.MultiplyAdd(qv, TKv.Load8(ref k7, i, keyPlanes), a7);
            }
            (SumEight(a0, a1, a2, a3, a4, a5, a6, a7) * scaleVector).StoreUnsafe(ref Unsafe.Add(ref scores, q * tiles));
        }
    }

    /// <summary>
    /// Whether the eight keys are read one whole row after another (<see cref="TwoByFourByRow"/>, <see cref="Lanes"/>)
    /// rather than 16 columns of each key in turn: rows of more than two cache lines read column-wise hop between
    /// eight rows a few hundred bytes apart, which the hardware prefetcher does not follow as a stream, and decode at
    /// depth waited on memory (F32 rows of head_dim 64 streamed at about half the speed of a plain read). Row by row
    /// they are one ascending stream. Rows of two lines or less (F16 of head_dim 64, Q8_0) keep the column order,
    /// which shares each query load among four keys: there row order measured 0.91-0.98x (F16 is bound by its
    /// conversions, not by memory). The order of loads only: every score keeps its FMAs and its bits. Only for a
    /// block of one token (decode): in a prefill block many query pairs share the keys, and row order there made pp512
    /// of `small` Q8_0 0.82-0.97x (four alternated runs), so prefill keeps the column order.
    /// </summary>
    private static bool ReadRowByRow<TKv>(int headDim) where TKv : struct, IKvElement<TKv> => TKv.RowBytes(headDim) > 128;

    /// <summary><see cref="TwoByFour"/> with each key's row read whole before the next (<see cref="ReadRowByRow"/>), same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> TwoByFourByRow<TKv>(ref float qa, ref float qb, ref byte k0, ref byte k1, ref byte k2, ref byte k3,
        int headDim, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        PairLanes<TKv>(ref qa, ref qb, ref k0, headDim, keyPlanes, out var a0, out var b0);
        PairLanes<TKv>(ref qa, ref qb, ref k1, headDim, keyPlanes, out var a1, out var b1);
        PairLanes<TKv>(ref qa, ref qb, ref k2, headDim, keyPlanes, out var a2, out var b2);
        PairLanes<TKv>(ref qa, ref qb, ref k3, headDim, keyPlanes, out var a3, out var b3);
        return SumEight(a0, a1, a2, a3, b0, b1, b2, b3);
    }

    /// <summary>The lanes of queries a and b against one key, before their horizontal sums: <see cref="TwoByFour"/>'s FMAs for that key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PairLanes<TKv>(ref float qa, ref float qb, ref byte key, int headDim, scoped in KvPlanes keyPlanes,
        out Vector256<float> a, out Vector256<float> b) where TKv : struct, IKvElement<TKv>
    {
        a = default;
        b = default;
        nuint i = 0;
        for (; i + 16 <= (nuint)headDim; i += 16)
        {
            TKv.Load16(ref key, i, keyPlanes, out Vector256<float> kv, out Vector256<float> kw);
            a = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qa, i + 8), kw, Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qa, i), kv, a));
            b = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qb, i + 8), kw, Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qb, i), kv, b));
        }
        if (i < (nuint)headDim)
        {
            Vector256<float> k = TKv.Load8(ref key, i, keyPlanes);
            a = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qa, i), k, a);
            b = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref qb, i), k, b);
        }
    }

    /// <summary>The eight lanes of one key's score before their horizontal sum, the whole row read in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Lanes<TKv>(ref float query, ref byte key, int headDim, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        Vector256<float> acc = default;
        nuint i = 0;
        for (; i + 16 <= (nuint)headDim; i += 16)
            acc = TwoSteps<TKv>(Vector256.LoadUnsafe(ref query, i), Vector256.LoadUnsafe(ref query, i + 8), ref key, i, acc, keyPlanes);
        if (i < (nuint)headDim) acc = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref query, i), TKv.Load8(ref key, i, keyPlanes), acc);
        return acc;
    }

    /// <summary>acc + q[i..i+8) x key[i..i+8) + q[i+8..i+16) x key[i+8..i+16), as two FMAs in that order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> TwoSteps<TKv>(Vector256<float> qv, Vector256<float> qw, ref byte key, nuint i, Vector256<float> acc,
        scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        TKv.Load16(ref key, i, keyPlanes, out Vector256<float> kv, out Vector256<float> kw);
        return Fma.MultiplyAdd(qw, kw, Fma.MultiplyAdd(qv, kv, acc));
    }

    /// <summary>Scores of queries a and b against keys 0..3, unscaled: lanes 0..3 for a, 4..7 for b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> TwoByFour<TKv>(ref float qa, ref float qb, ref byte k0, ref byte k1, ref byte k2, ref byte k3,
        int headDim, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        nuint i = 0;
        for (; i + 16 <= (nuint)headDim; i += 16)
        {
            Vector256<float> qva = Vector256.LoadUnsafe(ref qa, i), qwa = Vector256.LoadUnsafe(ref qa, i + 8);
            Vector256<float> qvb = Vector256.LoadUnsafe(ref qb, i), qwb = Vector256.LoadUnsafe(ref qb, i + 8);
            TKv.Load16(ref k0, i, keyPlanes, out Vector256<float> kv, out Vector256<float> kw);
            a0 = Fma.MultiplyAdd(qwa, kw, Fma.MultiplyAdd(qva, kv, a0));
            b0 = Fma.MultiplyAdd(qwb, kw, Fma.MultiplyAdd(qvb, kv, b0));
            TKv.Load16(ref k1, i, keyPlanes, out kv, out kw);
            a1 = Fma.MultiplyAdd(qwa, kw, Fma.MultiplyAdd(qva, kv, a1));
            b1 = Fma.MultiplyAdd(qwb, kw, Fma.MultiplyAdd(qvb, kv, b1));
            TKv.Load16(ref k2, i, keyPlanes, out kv, out kw);
            a2 = Fma.MultiplyAdd(qwa, kw, Fma.MultiplyAdd(qva, kv, a2));
            b2 = Fma.MultiplyAdd(qwb, kw, Fma.MultiplyAdd(qvb, kv, b2));
            TKv.Load16(ref k3, i, keyPlanes, out kv, out kw);
            a3 = Fma.MultiplyAdd(qwa, kw, Fma.MultiplyAdd(qva, kv, a3));
            b3 = Fma.MultiplyAdd(qwb, kw, Fma.MultiplyAdd(qvb, kv, b3));
        }
        if (i < (nuint)headDim)
        {
            Vector256<float> qva = Vector256.LoadUnsafe(ref qa, i), qvb = Vector256.LoadUnsafe(ref qb, i);
            Vector256<float> kv0 = TKv.Load8(ref k0, i, keyPlanes), kv1 = TKv.Load8(ref k1, i, keyPlanes);
            Vector256<float> kv2 = TKv.Load8(ref k2, i, keyPlanes), kv3 = TKv.Load8(ref k3, i, keyPlanes);
            a0 = Fma.MultiplyAdd(qva, kv0, a0);
            a1 = Fma.MultiplyAdd(qva, kv1, a1);
            a2 = Fma.MultiplyAdd(qva, kv2, a2);
            a3 = Fma.MultiplyAdd(qva, kv3, a3);
            b0 = Fma.MultiplyAdd(qvb, kv0, b0);
            b1 = Fma.MultiplyAdd(qvb, kv1, b1);
            b2 = Fma.MultiplyAdd(qvb, kv2, b2);
            b3 = Fma.MultiplyAdd(qvb, kv3, b3);
        }
        return SumEight(a0, a1, a2, a3, b0, b1, b2, b3);
    }

    /// <summary>
    /// The eight horizontal sums of a0..a7 as one vector, each in <see cref="HorizontalSum"/>'s order: lanes i and
    /// i + 4 first, then (x0 + x2) + (x1 + x3).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> SumEight(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        // x04 = [lo(a0) + hi(a0) | lo(a4) + hi(a4)]: four partial sums x0..x3 of a0 in the low half, of a4 in the high.
        Vector256<float> x04 = Avx.Add(Avx.Permute2x128(a0, a4, 0x20), Avx.Permute2x128(a0, a4, 0x31));
        Vector256<float> x15 = Avx.Add(Avx.Permute2x128(a1, a5, 0x20), Avx.Permute2x128(a1, a5, 0x31));
        Vector256<float> x26 = Avx.Add(Avx.Permute2x128(a2, a6, 0x20), Avx.Permute2x128(a2, a6, 0x31));
        Vector256<float> x37 = Avx.Add(Avx.Permute2x128(a3, a7, 0x20), Avx.Permute2x128(a3, a7, 0x31));
        // Per half: [x0 + x2 of a0, of a1, x1 + x3 of a0, of a1] (and the same for a2, a3).
        Vector256<float> y01 = Avx.Add(Avx.UnpackLow(x04, x15), Avx.UnpackHigh(x04, x15));
        Vector256<float> y23 = Avx.Add(Avx.UnpackLow(x26, x37), Avx.UnpackHigh(x26, x37));
        // (x0 + x2) + (x1 + x3) for a0, a1, a2, a3 in the low half and a4, a5, a6, a7 in the high half.
        return Avx.Add(Avx.Shuffle(y01, y23, 0b01_00_01_00), Avx.Shuffle(y01, y23, 0b11_10_11_10));
    }

    /// <summary>
    /// query · key with a fixed summation order (independent of where the rows sit in memory): eight lanes of FMAs over
    /// whole 8-element chunks in column order, <see cref="HorizontalSum"/>, then one FMA per leftover column.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot<TKv>(ReadOnlySpan<float> query, ref byte key, scoped in KvPlanes keyPlanes) where TKv : struct, IKvElement<TKv>
    {
        int i = 0, n = query.Length;
        ref float q = ref MemoryMarshal.GetReference(query);
        float sum;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref q, (nuint)i), TKv.Load8(ref key, (nuint)i, keyPlanes), acc);
            sum = HorizontalSum(acc);
        }
        else
        {
            sum = 0;
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(Unsafe.Add(ref q, i), TKv.Load1(ref key, i, keyPlanes), sum);
        return sum;
    }

    /// <summary><see cref="Dot{TKv}"/> of two float rows (the reference a tile's scores are held to).</summary>
    internal static float Dot(ReadOnlySpan<float> query, ReadOnlySpan<float> key) =>
        Dot<KvF32>(query, ref Unsafe.As<float, byte>(ref MemoryMarshal.GetReference(key[..query.Length])), default);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalSum(Vector256<float> v)
    {
        var x = v.GetLower() + v.GetUpper();
        return (x[0] + x[2]) + (x[1] + x[3]);
    }
}
