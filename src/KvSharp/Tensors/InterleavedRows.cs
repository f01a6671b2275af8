using System.Runtime.InteropServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// A Q8_0 or Q4_0 matrix rearranged so that eight rows are multiplied side by side, one row per float lane, and a
/// batch of tokens reuses each weight load: groups of eight consecutive rows, and within a group block by block
/// (the same bytes as the eight original blocks, so the copy is exactly the matrix's size):
/// <list type="bullet">
/// <item>the eight rows' half scales (16 bytes), then</item>
/// <item>Q8_0: eight 32-byte vectors, vector s holding quants 4s..4s+3 of row 0, row 1, ... row 7;</item>
/// <item>Q4_0: four 32-byte vectors, vector k holding packed bytes 4k..4k+3 of each row (low nibbles: elements
/// 4k..4k+3, high nibbles: elements 16+4k..16+4k+3).</item>
/// </list>
/// F32 groups are simply column-major: column c's eight values (rows 0..7) side by side, so one load gives the eight
/// rows' weights for a column and a token's value is broadcast against them.
/// A token's four activation bytes for those elements are broadcast to all lanes, so vpmaddubsw multiplies each row's
/// four weights by them and eight rows' dot products grow in eight lanes, with no horizontal sums.
/// Rows past the last whole group are not copied; <see cref="MatMul"/> computes them from the original matrix with the
/// single-row kernels, whose block-sequential order gives the same bits as a lane.
/// </summary>
public sealed unsafe class InterleavedRows : IDisposable
{
    public const int RowsPerGroup = 8;

    private byte* _data;

    private InterleavedRows(byte* data, long bytes, int groups, int groupBytes)
    {
        _data = data;
        Bytes = bytes;
        Groups = groups;
        GroupBytes = groupBytes;
    }

    /// <summary>Whether matrices of this type are interleaved (the types whose kernels use it).</summary>
    public static bool Supports(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.F32;

    /// <summary>Whole groups of eight rows (rows past Groups * 8 stay in the original matrix only).</summary>
    public int Groups { get; }

    /// <summary>Bytes of one group: eight rows' worth of blocks.</summary>
    public int GroupBytes { get; }

    public long Bytes { get; }

    /// <summary>First byte of group 0; valid until <see cref="Dispose"/>.</summary>
    public byte* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(InterleavedRows));

    /// <summary>Copies <paramref name="w"/> (Q8_0 or Q4_0) into the interleaved layout.</summary>
    public static InterleavedRows Create(in WeightMatrix w)
    {
        if (!Supports(w.Type)) throw new ArgumentException($"InterleavedRows: {w.Type} matrices are not interleaved (only Q8_0, Q4_0 and F32)", nameof(w));
        int groups = w.Rows / RowsPerGroup;
        int groupBytes = checked(w.RowBytes * RowsPerGroup);
        long bytes = Math.Max(1, (long)groups * groupBytes);
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        if (w.Type == GgmlType.F32)
        {
            for (int g = 0; g < groups; g++)
            {
                float* src = (float*)(w.Data + (long)g * groupBytes), dst = (float*)(data + (long)g * groupBytes);
                for (int r = 0; r < RowsPerGroup; r++)
                    for (int c = 0; c < w.Cols; c++)
                        dst[(long)c * RowsPerGroup + r] = src[(long)r * w.Cols + c];
            }
            return new InterleavedRows(data, bytes, groups, groupBytes);
        }
        int blocks = w.Cols / QK;
        int blockBytes = w.Type == GgmlType.Q8_0 ? Q8_0Bytes : Q4_0Bytes, vectors = w.Type == GgmlType.Q8_0 ? 8 : 4;
        for (int g = 0; g < groups; g++)
        {
            byte* src = w.Data + (long)g * groupBytes, dst = data + (long)g * groupBytes;
            for (int b = 0; b < blocks; b++, dst += RowsPerGroup * blockBytes)
            {
                for (int r = 0; r < RowsPerGroup; r++)
                {
                    byte* block = src + (long)r * w.RowBytes + b * blockBytes;
                    ((ushort*)dst)[r] = *(ushort*)block;
                    for (int v = 0; v < vectors; v++)
                        *(uint*)(dst + 16 + v * 32 + r * 4) = *(uint*)(block + 2 + 4 * v);
                }
            }
        }
        return new InterleavedRows(data, bytes, groups, groupBytes);
    }

    public void Dispose()
    {
        if (_data == null) return;
        NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
