namespace KvSharp.Cache.Paged;

/// <summary>
/// What a sequence of a KIVI pool keeps outside the pool (<see cref="KvSharp.Tensors.KvKivi{TBits, TAxis}"/>): per
/// layer, side (keys, values) and KV head, the type's header (where its pending rows are, the first position not yet
/// quantized, where its blocks lie) and the pending rows themselves, exact floats no other sequence ever reads; a
/// pinned copy of the block table the headers read through; and the step being written. The pool's blocks hold only
/// quantized groups.
/// </summary>
internal sealed unsafe class PagedExactRows
{
    private readonly byte[] _headers;
    private readonly int _kvHeads;

    public PagedExactRows(int layers, int kvHeads, int headerBytes)
    {
        _kvHeads = kvHeads;
        HeaderBytes = headerBytes;
        Pending = new float[]?[2 * layers * kvHeads];
        _headers = GC.AllocateArray<byte>(Pending.Length * headerBytes, pinned: true);
    }

    public int HeaderBytes { get; }

    /// <summary>Each head's pending rows, [(layer x 2 + K|V) x kv_heads + head].</summary>
    public float[]?[] Pending { get; }

    /// <summary>The block table as the headers read it (pinned; replaced when it grows).</summary>
    public int[] Table { get; private set; } = GC.AllocateArray<int>(4, pinned: true);

    /// <summary>The step being written: positions [From, End).</summary>
    public int From { get; set; }

    public int End { get; set; }

    /// <summary>Taken by a step's first attention of each head, which settles that head's groups.</summary>
    public Lock Settling { get; } = new();

    public int Index(int layer, bool value, int kvHead) => (layer * 2 + (value ? 1 : 0)) * _kvHeads + kvHead;

    /// <summary>The header of one layer, side and head.</summary>
    public Span<byte> Header(int index) => _headers.AsSpan(index * HeaderBytes, HeaderBytes);

    /// <summary>The header's first byte (pinned), as the attention kernel's side origin.</summary>
    public byte* HeaderAddress(int index)
    {
        fixed (byte* start = _headers) return start + (long)index * HeaderBytes;
    }

    /// <summary>Copies <paramref name="blocks"/> into <see cref="Table"/>, growing it (by doubling) when it does not fit.</summary>
    public void CopyTable(ReadOnlySpan<int> blocks)
    {
        if (Table.Length < blocks.Length)
            Table = GC.AllocateArray<int>(Math.Max(blocks.Length, 2 * Table.Length), pinned: true);
        blocks.CopyTo(Table);
    }

    /// <summary>A copy for a fork: the same headers (their pending rows copied), the same table and step.</summary>
    public PagedExactRows Fork()
    {
        var child = new PagedExactRows(Pending.Length / 2 / _kvHeads, _kvHeads, HeaderBytes) { From = From, End = End };
        _headers.CopyTo(child._headers, 0);
        child.Table = GC.AllocateArray<int>(Table.Length, pinned: true);
        Table.CopyTo(child.Table, 0);
        for (int i = 0; i < Pending.Length; i++)
        {
            if (Pending[i] is not { } rows) continue;
            child.Pending[i] = GC.AllocateArray<float>(rows.Length, pinned: true);
            rows.CopyTo(child.Pending[i]!, 0);
        }
        return child;
    }
}
