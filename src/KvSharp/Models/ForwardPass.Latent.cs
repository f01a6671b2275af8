using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// Multi-head latent attention's two steps around the ordinary attention (<see cref="LatentAttentionShape"/>): before
/// it, the cached row (rotated key part, normalised latent) and each head's query in the same space; after it, each
/// head's attention over latents expanded into its values. Between them the step is any model's: rope over the first
/// <see cref="ModelConfig.RopeDimensions"/> of each head, the row appended to the cache as key and value, multi-query
/// attention with the model's score scale.
/// </summary>
public sealed partial class ForwardPass
{
    private readonly LatentScratch? _latent;

    /// <summary>Scratch for up to maxBatch tokens: the queries as projected, the low-rank query, the latent row, and one head's gathered inputs and products.</summary>
    private sealed class LatentScratch(LatentAttentionShape mla, int heads, int maxBatch)
    {
        public readonly float[] Query = new float[maxBatch * heads * mla.QueryHeadDim];
        public readonly float[] LowRankQuery = new float[maxBatch * mla.QueryRank];
        public readonly float[] Row = new float[maxBatch * (mla.KvRank + mla.RopeDim)];
        public readonly float[] Gathered = new float[maxBatch * Math.Max(mla.NopeDim, mla.KvRank)];
        public readonly float[] Product = new float[maxBatch * Math.Max(mla.KvRank, mla.ValueDim)];
        public readonly float[] Values = new float[maxBatch * heads * mla.ValueDim];
    }

    /// <summary>
    /// Fills _q (heads of [rotated query part, W_UK^T x unrotated part]), _k and _v (the row [rotated key part,
    /// RMSNorm(latent)]) for n tokens. The file's projection gives the latent first and the rotated key after it; the
    /// cache row puts the rotated part first.
    /// </summary>
    private void ProjectLatent(LayerWeights layer, LatentAttentionWeights latent, ReadOnlySpan<float> input, int n)
    {
        var mla = _c.LatentAttention!;
        var s = _latent!;
        int heads = _c.HeadCount, r = mla.KvRank, rope = mla.RopeDim, nope = mla.NopeDim, qhd = mla.QueryHeadDim, row = _c.HeadDim;
        var queryInput = input;
        if (latent.QueryDownNorm is { } queryNorm)
        {
            var low = s.LowRankQuery.AsSpan(0, n * mla.QueryRank);
            _matMul.Multiply(latent.QueryDown, input, n, low);
            FloatOps.RmsNormRows(low, mla.QueryRank, queryNorm, _c.RmsNormEps, low);
            queryInput = low;
        }
        var query = s.Query.AsSpan(0, n * heads * qhd);
        _matMul.Multiply(layer.Query, queryInput, n, query);
        var projected = s.Row.AsSpan(0, n * (r + rope));
        _matMul.Multiply(latent.KvDown, input, n, projected);
        for (int t = 0; t < n; t++)
        {
            var from = projected.Slice(t * (r + rope), r + rope);
            var key = _k.AsSpan(t * row, row);
            from[r..].CopyTo(key[..rope]);
            FloatOps.RmsNorm(from[..r], latent.KvNorm, _c.RmsNormEps, key[rope..]);
            key.CopyTo(_v.AsSpan(t * row, row));
        }
        // Each head's unrotated query through its key expansion, all tokens at once.
        var gathered = s.Gathered.AsSpan(0, n * nope);
        var absorbed = s.Product.AsSpan(0, n * r);
        for (int h = 0; h < heads; h++)
        {
            for (int t = 0; t < n; t++) query.Slice((t * heads + h) * qhd, nope).CopyTo(gathered.Slice(t * nope, nope));
            _matMul.Multiply(latent.KeyAbsorb[h], gathered, n, absorbed);
            for (int t = 0; t < n; t++)
            {
                var q = _q.AsSpan((t * heads + h) * row, row);
                query.Slice((t * heads + h) * qhd + nope, rope).CopyTo(q[..rope]);
                absorbed.Slice(t * r, r).CopyTo(q[rope..]);
            }
        }
    }

    /// <summary>Each head's attention output over the latents (past its rotated part) through its value expansion: [n][heads x value].</summary>
    private ReadOnlySpan<float> ExpandLatentValues(LatentAttentionWeights latent, int n)
    {
        var mla = _c.LatentAttention!;
        var s = _latent!;
        int heads = _c.HeadCount, r = mla.KvRank, rope = mla.RopeDim, vd = mla.ValueDim, row = _c.HeadDim;
        var gathered = s.Gathered.AsSpan(0, n * r);
        var product = s.Product.AsSpan(0, n * vd);
        var values = s.Values.AsSpan(0, n * heads * vd);
        for (int h = 0; h < heads; h++)
        {
            for (int t = 0; t < n; t++) _attn.AsSpan((t * heads + h) * row + rope, r).CopyTo(gathered.Slice(t * r, r));
            _matMul.Multiply(latent.ValueUp[h], gathered, n, product);
            for (int t = 0; t < n; t++) product.Slice(t * vd, vd).CopyTo(values.Slice((t * heads + h) * vd, vd));
        }
        return values;
    }
}
