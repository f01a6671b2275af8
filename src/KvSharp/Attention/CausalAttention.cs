using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KvSharp.Attention;

/// <summary>
/// Fused attention of one group of query heads (the heads that share a K/V head) over a cache, with an online
/// softmax: keys are visited in tiles of <see cref="TileSize"/> positions, each tile's scores live only in a small
/// scratch buffer, and running max / sum / output are rescaled as tiles arrive — no full score matrix.
/// Tiles start at absolute positions that are multiples of <see cref="TileSize"/>, so a query's result has the same
/// arithmetic whether it is computed during a batched prefill or a single-token decode: the cache modes give
/// bit-identical logits.
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
            // Scores: each key row is read once for the whole group.
            for (int j = 0; j < tileLength; j++)
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
                float sum = runningSum[g] * correction;
                for (int j = 0; j < s.Length; j++)
                {
                    float p = MathF.Exp(s[j] - newMax);
                    s[j] = p;
                    sum += p;
                }
                runningSum[g] = sum;
                runningMax[g] = newMax;
                if (correction != 1f) Scale(output.Slice(g * headDim, headDim), correction);
            }

            // Weighted values: each value row is read once for the whole group.
            for (int j = 0; j < tileLength; j++)
            {
                var v = rows.Value(tileStart + j);
                for (int g = 0; g < groupSize; g++)
                    MultiplyAdd(output.Slice(g * headDim, headDim), v, scores[g * TileSize + j]);
            }
        }

        for (int g = 0; g < groupSize; g++)
            Scale(output.Slice(g * headDim, headDim), 1f / runningSum[g]);
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

    private static void MultiplyAdd(Span<float> acc, ReadOnlySpan<float> v, float p)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var pv = Vector256.Create(p);
            for (; i <= acc.Length - 8; i += 8)
                Vector256.FusedMultiplyAdd(Vector256.Create(v.Slice(i, 8)), pv, Vector256.Create((ReadOnlySpan<float>)acc.Slice(i, 8))).CopyTo(acc.Slice(i, 8));
        }
        for (; i < acc.Length; i++) acc[i] = MathF.FusedMultiplyAdd(v[i], p, acc[i]);
    }

    private static void Scale(Span<float> x, float factor)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= factor;
    }
}
