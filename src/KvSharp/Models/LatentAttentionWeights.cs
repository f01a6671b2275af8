using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// One layer's multi-head latent attention weights (<see cref="LatentAttentionShape"/>) beyond the query projection
/// (<see cref="LayerWeights.Query"/>: attn_q, or attn_q_b after <see cref="QueryDown"/>) and the output
/// (<see cref="LayerWeights.AttentionOutput"/>).
/// </summary>
public sealed unsafe class LatentAttentionWeights
{
    // The per-head matrices live here (pinned, so the views' pointers stay put) in F32: the older layout stores the
    // key expansion the other way round (attn_kv_b's rows are a head's key dimensions), and its transpose is built
    // once at load; the newer one (attn_k_b) is already the transpose and is only widened.
    private readonly float[] _keyAbsorb, _valueUp;

    /// <summary>[embedding → query rank] (attn_q_a), RMS-normalised by <see cref="QueryDownNorm"/>; unset without a query rank.</summary>
    public WeightMatrix QueryDown { get; init; }
    public float[]? QueryDownNorm { get; init; }
    /// <summary>[embedding → latent + rotated key] (attn_kv_a_mqa): the row the cache keeps, before its norm.</summary>
    public required WeightMatrix KvDown { get; init; }
    /// <summary>RMSNorm weights of the latent (attn_kv_a_norm).</summary>
    public required float[] KvNorm { get; init; }
    /// <summary>Per head [nope → latent]: folds the head's key expansion into its query (W_UK^T).</summary>
    public WeightMatrix[] KeyAbsorb { get; }
    /// <summary>Per head [latent → value]: expands the attention over latents into the head's output (W_UV).</summary>
    public WeightMatrix[] ValueUp { get; }

    /// <summary>
    /// Allocates the per-head matrices, zeroed, for the loader to fill in place through <see cref="KeyAbsorbValues"/>
    /// and <see cref="ValueUpValues"/> (a model's are hundreds of MB: built where they stay, not copied there).
    /// </summary>
    public LatentAttentionWeights(LatentAttentionShape shape, int heads)
    {
        int r = shape.KvRank, nope = shape.NopeDim, vd = shape.ValueDim;
        _keyAbsorb = GC.AllocateArray<float>(heads * r * nope, pinned: true);
        _valueUp = GC.AllocateArray<float>(heads * vd * r, pinned: true);
        fixed (float* k = _keyAbsorb, v = _valueUp)
        {
            // Pinned for the array's life: the pointers stay valid after the fixed block.
            float* kp = k, vp = v;
            KeyAbsorb = Enumerable.Range(0, heads).Select(h => new WeightMatrix(GgmlType.F32, r, nope, (byte*)(kp + (long)h * r * nope))).ToArray();
            ValueUp = Enumerable.Range(0, heads).Select(h => new WeightMatrix(GgmlType.F32, vd, r, (byte*)(vp + (long)h * vd * r))).ToArray();
        }
    }

    /// <summary>Every head's <see cref="KeyAbsorb"/>, one after another: per head, latent rows of nope values.</summary>
    internal Span<float> KeyAbsorbValues => _keyAbsorb;
    /// <summary>Every head's <see cref="ValueUp"/>, one after another: per head, value rows of latent values.</summary>
    internal Span<float> ValueUpValues => _valueUp;

    /// <summary>The matrices a step reads (the file's and the per-head F32 ones).</summary>
    public IEnumerable<WeightMatrix> Matrices() => [.. QueryDown.Data != null ? [QueryDown] : Array.Empty<WeightMatrix>(), KvDown, .. KeyAbsorb, .. ValueUp];
}
