namespace KvSharp.Tensors;

/// <summary>
/// Where one head's rows lie in a paged pool, for a type that finds its rows' groups itself
/// (<see cref="IKvElement{TSelf}.Page"/>, KIVI): the sequence's block table (pinned), the pool's first position of each
/// block (pinned), the pool's element and side planes of this side (keys or values), rows per block of one side, the
/// head's first row within a block, and the block size.
/// </summary>
public readonly record struct KvPaging(nint Table, nint Positions, nint Codes, nint Side, long RowsPerSide, long HeadOffset, int BlockSize);
