using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KvSharp.Tensors;

namespace KvSharp.Attention;

/// <summary>
/// Fused attention of one group of query heads (the heads that share a K/V head) over a cache, with an online
/// softmax: keys are visited in tiles of <see cref="TileSize"/> positions, each tile's scores live only in a small
/// scratch buffer, and running max / sum / output are rescaled as tiles arrive — no full score matrix.
/// Tiles start at absolute positions that are multiples of <see cref="TileSize"/>, so a query's result has the same
/// arithmetic whether it is computed during a batched prefill or a single-token decode: the cache modes give
/// bit-identical logits.
/// Softmax weights use ggml's vectorized expf (<see cref="FastExp"/>, as ggml_vec_soft_max_f32); its scalar twin gives
/// the same bits lane by lane, so a weight never depends on where in the tile (vector body or tail) it falls.
/// </summary>
public static class CausalAttention
{
    public const int TileSize = 32;

    /// <summary>Scratch floats <see cref="AttendGroup"/> needs for a group of <paramref name="groupSize"/> heads.</summary>
    public static int ScratchLength(int groupSize) => groupSize * (TileSize + 2);

    /// <summary>
    /// output[g] = softmax(q[g] · K[0..end)ᵀ · scale) · V[0..end) for each head g of the group.
    /// </summary>
    /// <param name="queries">groupSize rows of headDim (the group's query heads, consecutive).</param>
    /// <param name="rows">Where the K/V head's key and value rows of each position are.</param>
    /// <param name="end">Attend to positions [0, end): the causal mask is the bound itself.</param>
    /// <param name="output">groupSize rows of headDim.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/> floats.</param>
    public static void AttendGroup<TRows>(ReadOnlySpan<float> queries, scoped in TRows rows,
        int headDim, int groupSize, int end, float scale, Span<float> output, Span<float> scratch)
        where TRows : IKvRows, allows ref struct
    {
        Span<float> scores = scratch[..(groupSize * TileSize)];
        Span<float> runningMax = scratch.Slice(groupSize * TileSize, groupSize);
        Span<float> runningSum = scratch.Slice(groupSize * TileSize + groupSize, groupSize);
        runningMax.Fill(float.NegativeInfinity);
        runningSum.Clear();
        output[..(groupSize * headDim)].Clear();

        for (int tileStart = 0; tileStart < end; tileStart += TileSize)
        {
            int tileLength = Math.Min(TileSize, end - tileStart);
            // Scores: each key row is read once for the whole group; eight keys at a time where possible.
            int j = 0;
            if (Avx.IsSupported && Fma.IsSupported && headDim % 8 == 0)
                for (; j + 8 <= tileLength; j += 8)
                    ScoreEight(queries, rows, tileStart + j, headDim, groupSize, scale, scores[j..]);
            for (; j < tileLength; j++)
            {
                var k = rows.Key(tileStart + j);
                for (int g = 0; g < groupSize; g++)
                    scores[g * TileSize + j] = Dot(queries.Slice(g * headDim, headDim), k) * scale;
            }

            // Online softmax: fold this tile into each head's running max and sum, rescaling what came before.
            for (int g = 0; g < groupSize; g++)
            {
                var s = scores.Slice(g * TileSize, tileLength);
                float tileMax = float.NegativeInfinity;
                foreach (float x in s) tileMax = MathF.Max(tileMax, x);
                float newMax = MathF.Max(runningMax[g], tileMax);
                float correction = MathF.Exp(runningMax[g] - newMax);
                runningSum[g] = ExpSum(s, newMax, runningSum[g] * correction);
                runningMax[g] = newMax;
                if (correction != 1f) Scale(output.Slice(g * headDim, headDim), correction);
            }

            // Weighted values: output[g] += p[g, j] * V[j] for each key of the tile, in key order.
            for (int g = 0; g < groupSize; g++)
                AccumulateValues(output.Slice(g * headDim, headDim), rows, tileStart, scores.Slice(g * TileSize, tileLength));
        }

        for (int g = 0; g < groupSize; g++)
            Scale(output.Slice(g * headDim, headDim), 1f / runningSum[g]);
    }

    /// <summary>
    /// scores[g * TileSize + k] = Dot(query g, key start + k) * scale for k = 0..7: the eight dot products run side by
    /// side and their horizontal sums are done together, in exactly <see cref="Dot"/>'s order (lanes i and i+4, then
    /// (0+2)+(1+3)), so every score has Dot's bits.
    /// </summary>
    private static void ScoreEight<TRows>(ReadOnlySpan<float> queries, scoped in TRows rows, int start, int headDim, int groupSize,
        float scale, Span<float> scores) where TRows : IKvRows, allows ref struct
    {
        ref float k0 = ref MemoryMarshal.GetReference(rows.Key(start)), k1 = ref MemoryMarshal.GetReference(rows.Key(start + 1));
        ref float k2 = ref MemoryMarshal.GetReference(rows.Key(start + 2)), k3 = ref MemoryMarshal.GetReference(rows.Key(start + 3));
        ref float k4 = ref MemoryMarshal.GetReference(rows.Key(start + 4)), k5 = ref MemoryMarshal.GetReference(rows.Key(start + 5));
        ref float k6 = ref MemoryMarshal.GetReference(rows.Key(start + 6)), k7 = ref MemoryMarshal.GetReference(rows.Key(start + 7));
        for (int g = 0; g < groupSize; g++)
        {
            ref float q = ref MemoryMarshal.GetReference(queries.Slice(g * headDim, headDim));
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (nuint i = 0; i < (nuint)headDim; i += 8)
            {
                Vector256<float> qv = Vector256.LoadUnsafe(ref q, i);
                a0 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k0, i), a0);
                a1 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k1, i), a1);
                a2 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k2, i), a2);
                a3 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k3, i), a3);
                a4 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k4, i), a4);
                a5 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k5, i), a5);
                a6 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k6, i), a6);
                a7 = Fma.MultiplyAdd(qv, Vector256.LoadUnsafe(ref k7, i), a7);
            }
            Span<float> s = scores.Slice(g * TileSize, 8);
            SumPair(a0, a1, out s[0], out s[1]);
            SumPair(a2, a3, out s[2], out s[3]);
            SumPair(a4, a5, out s[4], out s[5]);
            SumPair(a6, a7, out s[6], out s[7]);
            for (int k = 0; k < 8; k++) s[k] *= scale;
        }
    }

    /// <summary>Two horizontal sums at once, each in <see cref="HorizontalSum"/>'s order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SumPair(Vector256<float> a, Vector256<float> b, out float sa, out float sb)
    {
        // [lo(a) + hi(a) | lo(b) + hi(b)], then per half (x0 + x2, x1 + x3), then their sum in lane 0 of each half.
        Vector256<float> x = Avx.Add(Avx.Permute2x128(a, b, 0x20), Avx.Permute2x128(a, b, 0x31));
        Vector256<float> y = Avx.Add(x, Avx.Permute(x, 0b01_00_11_10));
        Vector256<float> z = Avx.Add(y, Avx.Permute(y, 0b10_11_00_01));
        sa = z.ToScalar();
        sb = z.GetUpper().ToScalar();
    }

    /// <summary>Dot product with a fixed summation order (independent of where the spans sit in memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int i = 0;
        float sum;
        if (Vector256.IsHardwareAccelerated && a.Length >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= a.Length - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.Create(a.Slice(i, 8)), Vector256.Create(b.Slice(i, 8)), acc);
            sum = HorizontalSum(acc);
        }
        else
        {
            sum = 0;
        }
        for (; i < a.Length; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalSum(Vector256<float> v)
    {
        var x = v.GetLower() + v.GetUpper();
        return (x[0] + x[2]) + (x[1] + x[3]);
    }

    /// <summary>s[j] = exp(s[j] - max) in place; returns <paramref name="sum"/> plus the new values, added in index order.</summary>
    private static float ExpSum(Span<float> s, float max, float sum)
    {
        int j = 0;
        if (Avx2.IsSupported && Fma.IsSupported)
        {
            ref float p = ref MemoryMarshal.GetReference(s);
            for (; j <= s.Length - 8; j += 8)
                FastExp.Avx2Exp(Vector256.LoadUnsafe(ref p, (nuint)j) - Vector256.Create(max)).StoreUnsafe(ref p, (nuint)j);
        }
        for (; j < s.Length; j++) s[j] = FastExp.Scalar(s[j] - max);
        foreach (float x in s) sum += x;
        return sum;
    }

    /// <summary>
    /// acc += p[j] * V[start + j] for every j, one FMA per element per key in key order (the same arithmetic as a
    /// key-by-key loop); the accumulator stays in registers 64 columns at a time instead of going through memory.
    /// </summary>
    private static void AccumulateValues<TRows>(Span<float> acc, scoped in TRows rows, int start, ReadOnlySpan<float> p)
        where TRows : IKvRows, allows ref struct
    {
        int c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float a = ref MemoryMarshal.GetReference(acc);
            for (; c + 64 <= acc.Length; c += 64)
            {
                Vector256<float> a0 = Vector256.LoadUnsafe(ref a, (nuint)c), a1 = Vector256.LoadUnsafe(ref a, (nuint)c + 8);
                Vector256<float> a2 = Vector256.LoadUnsafe(ref a, (nuint)c + 16), a3 = Vector256.LoadUnsafe(ref a, (nuint)c + 24);
                Vector256<float> a4 = Vector256.LoadUnsafe(ref a, (nuint)c + 32), a5 = Vector256.LoadUnsafe(ref a, (nuint)c + 40);
                Vector256<float> a6 = Vector256.LoadUnsafe(ref a, (nuint)c + 48), a7 = Vector256.LoadUnsafe(ref a, (nuint)c + 56);
                for (int j = 0; j < p.Length; j++)
                {
                    ref float v = ref Unsafe.AsRef(in rows.Value(start + j).Slice(c, 64)[0]);
                    Vector256<float> pj = Vector256.Create(p[j]);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v), pj, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 8), pj, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 16), pj, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 24), pj, a3);
                    a4 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 32), pj, a4);
                    a5 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 40), pj, a5);
                    a6 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 48), pj, a6);
                    a7 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, 56), pj, a7);
                }
                a0.StoreUnsafe(ref a, (nuint)c); a1.StoreUnsafe(ref a, (nuint)c + 8);
                a2.StoreUnsafe(ref a, (nuint)c + 16); a3.StoreUnsafe(ref a, (nuint)c + 24);
                a4.StoreUnsafe(ref a, (nuint)c + 32); a5.StoreUnsafe(ref a, (nuint)c + 40);
                a6.StoreUnsafe(ref a, (nuint)c + 48); a7.StoreUnsafe(ref a, (nuint)c + 56);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 8 <= acc.Length; c += 8)
            {
                Vector256<float> a0 = Vector256.Create((ReadOnlySpan<float>)acc.Slice(c, 8));
                for (int j = 0; j < p.Length; j++)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(rows.Value(start + j).Slice(c, 8)), Vector256.Create(p[j]), a0);
                a0.CopyTo(acc.Slice(c, 8));
            }
        }
        for (; c < acc.Length; c++)
        {
            float a0 = acc[c];
            for (int j = 0; j < p.Length; j++) a0 = MathF.FusedMultiplyAdd(rows.Value(start + j)[c], p[j], a0);
            acc[c] = a0;
        }
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
