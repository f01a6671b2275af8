namespace KvSharp.Attention;

/// <summary>
/// Where the attention kernel finds the key and value row of a position for one layer and KV head. Implemented by
/// small structs so the kernel is specialised per storage layout (contiguous rows, or rows behind a block table)
/// with no virtual call per position.
/// </summary>
public interface IKvRows
{
    ReadOnlySpan<float> Key(int position);
    ReadOnlySpan<float> Value(int position);
}

/// <summary>Rows of one head laid out contiguously: row p at p x headDim.</summary>
public readonly ref struct ContiguousKvRows(ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headDim) : IKvRows
{
    private readonly ReadOnlySpan<float> _keys = keys;
    private readonly ReadOnlySpan<float> _values = values;
    private readonly int _headDim = headDim;

    public ReadOnlySpan<float> Key(int position) => _keys.Slice(position * _headDim, _headDim);
    public ReadOnlySpan<float> Value(int position) => _values.Slice(position * _headDim, _headDim);
}
