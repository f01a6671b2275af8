using KvSharp.Attention;

namespace KvSharp.Models;

/// <summary>
/// One sequence's keys and values as the forward pass sees them, whatever the storage (the Cache layer implements it:
/// a contiguous or static cache, or blocks of a paged pool). The forward pass reserves room, writes each new token's K and
/// V for a layer, attends over positions [0, end) and finally commits the new length.
/// </summary>
public interface IKvStore
{
    /// <summary>Positions holding valid keys and values.</summary>
    int Length { get; }

    /// <summary>The most positions this sequence may hold.</summary>
    int MaxLength { get; }

    /// <summary>Makes room for positions [0, <paramref name="length"/>); throws if it cannot.</summary>
    void Reserve(int length);

    /// <summary>Stores one token's keys and values (all KV heads, kv_heads x head_dim each) for one layer.</summary>
    void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);

    /// <summary>
    /// Attention of a block of this sequence's tokens, for the query heads sharing <paramref name="kvHead"/>, over
    /// <paramref name="layer"/>: token t of the block attends to positions [0, block.FirstPosition + t]; see
    /// <see cref="CausalAttention.Attend{TRows}"/>.
    /// </summary>
    void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch);

    /// <summary>
    /// One decode token's attention (at <paramref name="position"/>) for KV heads [<paramref name="firstHead"/>,
    /// firstHead + <paramref name="heads"/>) of <paramref name="layer"/>, all in one call, with the bits
    /// <see cref="Attend"/> gives head by head: queries and outputs are the heads' groups one after another, head h's
    /// scratch <see cref="CausalAttention.ScratchLength"/>(group) floats at h x <paramref name="scratchStride"/>.
    /// False, having done nothing, where the store attends head by head only. <paramref name="sinkLogits"/>: the heads'
    /// groups' sink logits one after another (<see cref="QueryBlock.SinkLogits"/>), or empty.
    /// </summary>
    bool TryAttendHeads(int layer, int firstHead, int heads, ReadOnlySpan<float> queries, Span<float> output, int position, float scale,
        Span<float> scratch, int scratchStride, ReadOnlySpan<float> sinkLogits = default) => false;

    /// <summary>
    /// True when each KV head's attention must see a step's tokens as one block, in one call: a policy whose every
    /// query changes what the next one sees (H2O's eviction, SnapKV's votes) cannot take a step's blocks in any order
    /// or at once. The forward pass then splits the work by KV head only.
    /// </summary>
    bool AttendsWholeChunks => false;

    /// <summary>
    /// A hint that the attention of (<paramref name="layer"/>, <paramref name="kvHead"/>) over positions [0,
    /// <paramref name="end"/>) comes soon: starts loading the first rows. Changes nothing;
    /// a store that has nothing to prefetch may ignore it.
    /// </summary>
    void Prefetch(int layer, int kvHead, int end) { }

    /// <summary>Declares positions [Length, <paramref name="length"/>) written for every layer.</summary>
    void Commit(int length);
}
