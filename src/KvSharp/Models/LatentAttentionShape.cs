namespace KvSharp.Models;

/// <summary>
/// Multi-head latent attention (MLA: DeepSeek V2/V3, Kimi, GLM-4.7-Flash; GGUF architecture <c>deepseek2</c>): every
/// token's keys and values are one shared latent of <see cref="KvRank"/> values plus one rotated key part of
/// <see cref="RopeDim"/>, which each head expands with its own matrices. KvSharp caches the latent itself, as one
/// KV head of <see cref="CacheRowDim"/> (the rotated part first, so rope, KIVI and re-rotation treat it as a partially
/// rotated head), and folds each head's key expansion into its query instead (q_nope x W_UK), so a head's score is
/// q_pe . k_pe + (W_UK^T q_nope) . latent, the same value the expanded keys give. A head's output is the attention over
/// the latents, expanded by its value matrix afterwards.
/// </summary>
/// <param name="QueryRank">The queries' own low rank (attn_q_a, then attn_q_a_norm and attn_q_b); 0 where a full attn_q projects them (V2-Lite).</param>
/// <param name="KvRank">The latent's width (kv_lora_rank: 512 in DeepSeek's models).</param>
/// <param name="NopeDim">Each head's unrotated key width (qk_nope_head_dim: 128).</param>
/// <param name="RopeDim">The rotated key part every head shares (qk_rope_head_dim: 64).</param>
/// <param name="ValueDim">Each head's value width (v_head_dim: 128).</param>
public sealed record LatentAttentionShape(int QueryRank, int KvRank, int NopeDim, int RopeDim, int ValueDim)
{
    /// <summary>One cached row: the rotated key part, then the latent.</summary>
    public int CacheRowDim => RopeDim + KvRank;

    /// <summary>Each head's query as the file projects it: its unrotated part, then its rotated part.</summary>
    public int QueryHeadDim => NopeDim + RopeDim;
}
