namespace KvSharp.Tensors;

/// <summary>
/// A 2-D weight tensor in its file encoding: <see cref="Rows"/> rows of <see cref="Cols"/> elements (Cols = GGUF ne0,
/// contiguous), each row a whole number of <see cref="Type"/> blocks, at native memory (normally the memory-mapped
/// model file). Nothing is copied; the owner of the memory must keep it alive while the matrix is used.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    public WeightMatrix(GgmlType type, int rows, int cols, byte* data)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        int bs = GgmlTypes.BlockSize(type);
        if (cols % bs != 0)
            throw new ArgumentException($"WeightMatrix: {cols} columns is not a whole number of {type} blocks of {bs}", nameof(cols));
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        if (rowBytes > int.MaxValue)
            throw new ArgumentException($"WeightMatrix: a row of {cols} {type} elements is {rowBytes} bytes, more than a span can hold", nameof(cols));
        if (data == null && rows > 0)
            throw new ArgumentNullException(nameof(data));
        Type = type;
        Rows = rows;
        Cols = cols;
        RowBytes = (int)rowBytes;
        Data = data;
    }

    public GgmlType Type { get; }

    /// <summary>Number of rows (GGUF ne1): the output size of a matmul.</summary>
    public int Rows { get; }

    /// <summary>Elements per row (GGUF ne0): the input size of a matmul.</summary>
    public int Cols { get; }

    /// <summary>Bytes of one encoded row.</summary>
    public int RowBytes { get; }

    /// <summary>First byte of row 0.</summary>
    public byte* Data { get; }

    /// <summary>
    /// The matrix's rows also laid out eight at a time for the interleaved kernels (Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_1, Q4_K, Q5_K, Q6_K, F32; see
    /// <see cref="InterleavedRows"/>), or null. <see cref="MatMul"/> gives the same bits either way; with it, faster.
    /// </summary>
    public InterleavedRows? Interleaved { get; init; }

    /// <summary>Total bytes of the matrix.</summary>
    public long TotalBytes => (long)Rows * RowBytes;

    /// <summary>The encoded bytes of row <paramref name="r"/>.</summary>
    public ReadOnlySpan<byte> Row(int r)
    {
        if ((uint)r >= (uint)Rows)
            throw new ArgumentOutOfRangeException(nameof(r), r, $"row index outside 0..{Rows - 1}");
        return new ReadOnlySpan<byte>(Data + (long)r * RowBytes, RowBytes);
    }

    public override string ToString() => $"WeightMatrix({Type}, {Rows}x{Cols})";
}
