using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Models;

namespace KvSharp.Tests.Cache;

/// <summary>
/// A cache seen by the forward pass as if every position were <paramref name="offset"/> further on: the token at index
/// i of <paramref name="inner"/> is rotated at position i + offset. RoPE makes attention depend only on the distance
/// between positions, so a sequence run through this computes what it computes at index positions (up to float
/// rounding): the oracle for a shifted cache, whose rows should stand for the same tokens a fixed distance apart.
/// </summary>
public sealed class OffsetKvStore(KvCache inner, int offset) : IKvStore
{
    private IKvStore Inner => inner;

    public int Length => inner.Length + offset;
    public int MaxLength => inner.MaxLength + offset;
    public void Reserve(int length) => Inner.Reserve(length - offset);
    public void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values) => Inner.Write(layer, position - offset, keys, values);
    public void Commit(int length) => inner.Commit(length - offset);

    public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) =>
        Inner.Attend(layer, kvHead,
            new QueryBlock(block.Queries, block.Output, block.Tokens, block.Stride, block.FirstPosition - offset, block.GroupSize, block.HeadDim),
            scale, scratch);
}
