using System.Runtime.InteropServices;
using static KvSharp.Tensors.BlockLayouts;

namespace KvSharp.Tensors;

/// <summary>
/// A Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_1, Q5_0, Q5_1, K-quant (Q4_K, Q5_K, Q6_K) or F32 matrix rearranged so that eight rows are multiplied side by side,
/// one row per float lane, and a batch of tokens reuses each weight load: groups of eight consecutive rows, and within
/// a group block by block (the same bytes as the eight original blocks, so the copy is exactly the matrix's size):
/// <list type="bullet">
/// <item>the eight rows' half scales (16 bytes; Q4_K, Q5_K: the eight d, then the eight dmin; Q6_K: its d, stored
/// last in a block, comes first), then</item>
/// <item>Q8_0: eight 32-byte vectors, vector s holding quants 4s..4s+3 of row 0, row 1, ... row 7;</item>
/// <item>Q4_0 (and IQ4_NL, same block shape; MXFP4: the eight rows' E8M0 bytes, 8 bytes, in place of the d; Q4_1: the eight d, then the eight m; Q5_0, Q5_1: first the eight rows'
/// fifth bits as one vector, <see cref="FifthBitPlane"/>): four 32-byte vectors, vector k holding packed bytes
/// 4k..4k+3 of each row (low nibbles: elements 4k..4k+3, high nibbles: elements 16+4k..16+4k+3);</item>
/// <item>Q4_K (per super-block of 256): three 32-byte vectors, vector i holding bytes 4i..4i+3 of each row's 12 bytes
/// of packed 6-bit scales and mins (so ggml's unpacking runs on eight rows at once), then 32 vectors of quants,
/// vector 8j+s holding bytes 32j+4s..32j+4s+3 of each row (low nibbles: elements 64j+4s.., sub-block 2j; high
/// nibbles: elements 64j+32+4s.., sub-block 2j+1);</item>
/// <item>Q5_K: as Q4_K with the eight vectors of qh words (word s: the fifth bits of quant word 8j+s, bit k for
/// sub-block k) between the scales and the quants;</item>
/// <item>Q6_K (per super-block of 256): the block's 52 words, each as a 32-byte vector of the eight rows' words, in
/// the order the kernels read them (see <see cref="Q6_KWords"/>) so that a group streams front to back: the sixteen
/// int8 scales (4 vectors), then per word pair ql, ql of the odd groups, qh (6 vectors).</item>
/// </list>
/// F32 groups are simply column-major: column c's eight values (rows 0..7) side by side, so one load gives the eight
/// rows' weights for a column and a token's value is broadcast against them.
/// A token's four activation bytes for those elements are broadcast to all lanes, so vpmaddubsw multiplies each row's
/// four weights by them and eight rows' dot products grow in eight lanes, with no horizontal sums.
/// Rows past the last whole group are not copied; <see cref="MatMul"/> computes them from the original matrix with the
/// single-row kernels, whose block-sequential order gives the same bits as a lane.
/// The copies live on transparent huge pages where the OS gives them (<see cref="HugePageSlabs"/>).
/// A Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL or MXFP4 copy may pair its groups (<see cref="PairedGroups"/>): the same bytes, each pair's two
/// groups merged block by block into one stream for the sixteen-row kernels.
/// </summary>
public sealed unsafe class InterleavedRows : IDisposable
{
    public const int RowsPerGroup = 8;

    private byte* _data;
    private readonly HugePageSlabs.Slab _slab;

    // For SetPairedGroups: the matrix's type and blocks per row.
    private readonly GgmlType _type;
    private readonly int _blocks;

    private InterleavedRows(byte* data, HugePageSlabs.Slab slab, long bytes, int groups, int groupBytes, GgmlType type, int blocks, bool pairedGroups)
    {
        _data = data;
        _slab = slab;
        Bytes = bytes;
        Groups = groups;
        GroupBytes = groupBytes;
        _type = type;
        _blocks = blocks;
        PairedGroups = pairedGroups;
    }

    /// <summary>Whether matrices of this type are interleaved (the types whose kernels use it).</summary>
    public static bool Supports(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.IQ4_NL or GgmlType.MXFP4 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.F32;

    /// <summary>Whole groups of eight rows (rows past Groups * 8 stay in the original matrix only).</summary>
    public int Groups { get; }

    /// <summary>Bytes of one group: eight rows' worth of blocks.</summary>
    public int GroupBytes { get; }

    public long Bytes { get; }

    /// <summary>First byte of group 0; valid until <see cref="Dispose"/>.</summary>
    public byte* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(InterleavedRows));

    /// <summary>
    /// Whether each whole pair of groups is stored as one stream (<see cref="PairGroups"/>): set for the types whose
    /// kernels read pairs that way. A lone last group (an odd group count) keeps the plain layout.
    /// </summary>
    public bool PairedGroups { get; private set; }

    /// <summary>
    /// Whether a copy of a <paramref name="type"/> matrix made now pairs its groups: a nibble type (<see cref="CanPairGroups"/>)
    /// where its one-token products run on <see cref="KernelPath.Avx512"/> (<see cref="KernelPaths"/>, KVSHARP_ISA included), whose kernels take
    /// sixteen rows at a time, on a CPU of the class where that was measured faster (<see cref="PairingMeasuredFaster"/>). The other paths read a paired copy too (<see cref="VecDotAvx2Interleaved"/>), so a test or
    /// benchmark that forces another path later still runs interleaved kernels, on the same bits.
    /// </summary>
    /// <remarks>
    /// Why: the pair kernel read each 512-bit weight vector as two 32-byte halves 3,456 bytes apart (`small` rows of
    /// 768) and joined them, and its scales likewise: two streams, an insert per vector. Paired, a vector is one load,
    /// the sixteen scales one, and the next block's lines one run to request. `alternate 150 T Q4_0 Avx512Pair
    /// Q4PairStream` (the `small` model's matrices, 62 MB, streamed from memory; Zen 5, 2026-12-06): 1.13-1.37x on two
    /// threads, 1.09-1.33x on one; from L2 1.24x. Whole decode steps (`profile-step 40 2 1 T unpaired`, the same memory in
    /// both layouts): Q4_0 0.755 of the plain layout's time, Q5_0 0.738, Q4_1 0.775, Q5_1 0.840; 16 sequences 0.96-0.99.
    /// </remarks>
    public static bool PairsGroupsByDefault(GgmlType type)
        => CanPairGroups(type) && KernelPaths.For(type, KernelPaths.Requested, tokens: 1) == KernelPath.Avx512 && PairingMeasuredFaster;

    /// <summary>
    /// Whether this CPU is of the class where pairing was measured faster: AVX-512 with AVX-VNNI (Zen 5 here). On
    /// AVX-512 without AVX-VNNI (Zen 4) the only measurement of this layout (the sixth session's `Q4PairStream`, the
    /// Q4_0 one-token kernel streamed) read 0.96-1.01x without requests ahead and 0.77-0.95x with them, so copies there
    /// stay plain until pairing is measured on that class.
    /// </summary>
    private static bool PairingMeasuredFaster => KernelPaths.IsAvailable(KernelPath.Avx2Vnni);

    /// <summary>Whether copies of <paramref name="type"/> can pair their groups: the nibble types (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4).</summary>
    public static bool CanPairGroups(GgmlType type) => type is GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.IQ4_NL or GgmlType.MXFP4;

    /// <summary>Copies <paramref name="w"/> (a type <see cref="Supports"/> accepts) into the interleaved layout (<see cref="PairsGroupsByDefault"/> decides the pairing).</summary>
    public static InterleavedRows Create(in WeightMatrix w) => Create(w, PairsGroupsByDefault(w.Type));

    /// <summary>
    /// Copies <paramref name="w"/> into the interleaved layout; with <paramref name="pairGroups"/> (the types
    /// <see cref="CanPairGroups"/> accepts) each whole pair of groups is then merged into one stream (<see cref="PairGroups"/>).
    /// </summary>
    public static InterleavedRows Create(in WeightMatrix w, bool pairGroups)
    {
        if (pairGroups && !CanPairGroups(w.Type))
            throw new ArgumentException($"InterleavedRows: only Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and MXFP4 groups are paired, not {w.Type}", nameof(pairGroups));
        if (!Supports(w.Type)) throw new ArgumentException($"InterleavedRows: {w.Type} matrices are not interleaved (only Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K and F32)", nameof(w));
        int groups = w.Rows / RowsPerGroup;
        int groupBytes = checked(w.RowBytes * RowsPerGroup);
        long bytes = Math.Max(1, (long)groups * groupBytes);
        byte* data = HugePageSlabs.Allocate(bytes, out var slab);
        if (w.Type == GgmlType.F32)
        {
            for (int g = 0; g < groups; g++)
            {
                float* src = (float*)(w.Data + (long)g * groupBytes), dst = (float*)(data + (long)g * groupBytes);
                for (int r = 0; r < RowsPerGroup; r++)
                    for (int c = 0; c < w.Cols; c++)
                        dst[(long)c * RowsPerGroup + r] = src[(long)r * w.Cols + c];
            }
            return new InterleavedRows(data, slab, bytes, groups, groupBytes, w.Type, blocks: 0, pairedGroups: false);
        }
        int blockBytes = GgmlTypes.BlockBytes(w.Type);
        if (w.Type is GgmlType.Q4_K or GgmlType.Q5_K) // scales, (Q5_K: qh,) quants: every word after d, dmin in order
            InterleaveBlocks(w, data, groups, QK_K, blockBytes, halves: [0, 2], Words(Q4_K_Scales, (blockBytes - 4) / 4));
        else if (w.Type is GgmlType.Q4_1 or GgmlType.Q5_1) // d, m, (Q5_1: qh,) then the quants as Q4_0's
            InterleaveBlocks(w, data, groups, QK, blockBytes, halves: [0, 2], Words(4, (blockBytes - 4) / 4));
        else if (w.Type == GgmlType.Q6_K)
            InterleaveBlocks(w, data, groups, QK_K, blockBytes, halves: [Q6_K_D], Q6_KWords());
        else if (w.Type == GgmlType.MXFP4) // the eight E8M0 bytes, then the quants as Q4_0's
            InterleaveBlocks(w, data, groups, QK, blockBytes, halves: [], Words(1, 4), scaleBytes: [0]);
        else
            InterleaveBlocks(w, data, groups, QK, blockBytes, halves: [0], Words(2, (blockBytes - 2) / 4));
        if (w.Type is GgmlType.Q5_0 or GgmlType.Q5_1)
        {
            int qh = w.Type == GgmlType.Q5_1 ? 32 : 16, groupBlockBytes = RowsPerGroup * blockBytes;
            for (long b = 0; b < (long)groups * (w.Cols / QK); b++)
                FifthBitPlane(data + b * groupBlockBytes + qh);
        }
        if (pairGroups) PairGroups(data, groups, groupBytes, w.Cols / QK, PairedParts(w.Type), pair: true);
        return new InterleavedRows(data, slab, bytes, groups, groupBytes, w.Type, w.Cols / QK, pairGroups);
    }

    /// <summary>
    /// The parts of a nibble type's group block, in order, in bytes: the eight d (MXFP4: the eight E8M0 bytes), (Q4_1, Q5_1: the eight m,) (Q5_0, Q5_1:
    /// the fifth-bit plane,) then the four quant vectors.
    /// </summary>
    private static int[] PairedParts(GgmlType type) => type switch
    {
        GgmlType.Q4_0 or GgmlType.IQ4_NL => [16, 32, 32, 32, 32],
        GgmlType.MXFP4 => [8, 32, 32, 32, 32],
        GgmlType.Q4_1 => [16, 16, 32, 32, 32, 32],
        GgmlType.Q5_0 => [16, 32, 32, 32, 32, 32],
        GgmlType.Q5_1 => [16, 16, 32, 32, 32, 32, 32],
        _ => throw new ArgumentException($"InterleavedRows: {type} groups are not paired", nameof(type)),
    };

    /// <summary>
    /// Rewrites each whole pair of groups (2p, 2p + 1; a lone last group stays as it is) in place, block by block, as one
    /// stream: each part of the block (<paramref name="parts"/>: the scales, mins, fifth-bit plane, each quant vector),
    /// the first group's then the second's. So every part of the pair block sits at twice its offset in a group block,
    /// and a quant vector or the plane of sixteen rows is one 512-bit load. The pair keeps its place and size.
    /// </summary>
    private static void PairGroups(byte* data, int groups, int groupBytes, int blocks, ReadOnlySpan<int> parts, bool pair)
    {
        int blockBytes = 0;
        foreach (int part in parts) blockBytes += part;
        var copy = new byte[2 * groupBytes];
        for (int g = 0; g + 1 < groups; g += 2)
        {
            byte* first = data + (long)g * groupBytes;
            new ReadOnlySpan<byte>(first, copy.Length).CopyTo(copy);
            fixed (byte* c = copy)
            {
                // Pairing reads the plain groups from the copy and writes the pair blocks; unpairing the reverse.
                byte* paired = pair ? first : c, plain = pair ? c : first;
                for (int k = 0; k < blocks; k++)
                {
                    byte* a = plain + k * blockBytes, b = a + groupBytes;
                    foreach (int part in parts)
                    {
                        if (pair)
                        {
                            Buffer.MemoryCopy(a, paired, part, part);
                            Buffer.MemoryCopy(b, paired + part, part, part);
                        }
                        else
                        {
                            Buffer.MemoryCopy(paired, a, part, part);
                            Buffer.MemoryCopy(paired + part, b, part, part);
                        }
                        a += part;
                        b += part;
                        paired += 2 * part;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Rearranges the copy in place into the paired or the plain layout (<see cref="PairedGroups"/>), for benchmarks that
    /// time both layouts on the same memory: two loads of a model sit on different pages, and in one process the second
    /// ran 4-8% slower with the same layout. Not while any product reads the copy.
    /// </summary>
    internal void SetPairedGroups(bool paired)
    {
        if (paired == PairedGroups) return;
        if (!CanPairGroups(_type)) throw new InvalidOperationException($"InterleavedRows: {_type} groups are not paired");
        PairGroups(Data, Groups, GroupBytes, _blocks, PairedParts(_type), paired);
        PairedGroups = paired;
    }

    /// <summary>
    /// Rewrites a Q5 group block's eight qh words (row r's at 4r: bit e is the fifth bit of element e) in place as the
    /// plane the kernels read: byte 4r + i holds, for each quant vector k (0..3), the fifth bit of row r's element
    /// 4k + i (the vector's low nibble in that byte) at bit 4 + k, and of element 16 + 4k + i (its high nibble) at bit
    /// k. So a 16-bit shift right by k, or left by 4 - k, and one mask put a vector's 32 fifth bits at bit 4 of their
    /// bytes (<see cref="VecDotAvx2Interleaved"/>): two instructions for each half of a vector where spreading the
    /// words took five, on the same bytes.
    /// </summary>
    internal static void FifthBitPlane(byte* qh)
    {
        Span<uint> words = stackalloc uint[RowsPerGroup];
        for (int r = 0; r < RowsPerGroup; r++) words[r] = ((uint*)qh)[r];
        for (int r = 0; r < RowsPerGroup; r++)
            for (int i = 0; i < 4; i++)
            {
                int plane = 0;
                for (int k = 0; k < 4; k++)
                {
                    plane |= (int)((words[r] >> (4 * k + i)) & 1) << (4 + k);
                    plane |= (int)((words[r] >> (16 + 4 * k + i)) & 1) << k;
                }
                qh[4 * r + i] = (byte)plane;
            }
    }

    /// <summary>Byte offsets of <paramref name="count"/> consecutive words of a block from <paramref name="first"/>.</summary>
    private static int[] Words(int first, int count) => Enumerable.Range(0, count).Select(v => first + 4 * v).ToArray();

    /// <summary>
    /// A Q6_K block's words in the order the kernels read them, so that a group is read front to back: the four words
    /// of scales, then for each half h and word pair s = 0, 2, 4, 6: ql words 16h + s, 16h + s + 1 (groups 0 and 2),
    /// ql words 16h + 8 + s, +1 (groups 1 and 3), qh words 8h + s, +1.
    /// </summary>
    private static int[] Q6_KWords()
    {
        var words = new List<int>();
        for (int i = 0; i < 4; i++) words.Add(Q6_K_Scales + 4 * i);
        for (int hs = 0; hs < 8; hs++)
        {
            int h = hs >> 2, s = 2 * (hs & 3);
            foreach (int first in new[] { Q6_K_Ql + 4 * (16 * h + s), Q6_K_Ql + 4 * (16 * h + 8 + s), Q6_K_Qh + 4 * (8 * h + s) })
                words.AddRange([first, first + 4]);
        }
        return words.ToArray();
    }

    /// <summary>
    /// Block b of a group: for each half at offset <paramref name="halves"/>[i] of a block, the eight rows' halves
    /// (16 bytes); then for each byte at offset <paramref name="scaleBytes"/>[i] (MXFP4's exponent), the eight rows'
    /// bytes (8 bytes); then for each word at byte offset <paramref name="words"/>[v] of a block, the eight rows' words
    /// (32 bytes).
    /// </summary>
    private static void InterleaveBlocks(in WeightMatrix w, byte* data, int groups, int blockSize, int blockBytes,
        ReadOnlySpan<int> halves, ReadOnlySpan<int> words, ReadOnlySpan<int> scaleBytes = default)
    {
        int blocks = w.Cols / blockSize;
        for (int g = 0; g < groups; g++)
        {
            byte* src = w.Data + (long)g * RowsPerGroup * w.RowBytes, dst = data + (long)g * RowsPerGroup * w.RowBytes;
            for (int b = 0; b < blocks; b++, dst += RowsPerGroup * blockBytes)
            {
                for (int r = 0; r < RowsPerGroup; r++)
                {
                    byte* block = src + (long)r * w.RowBytes + b * blockBytes;
                    for (int h = 0; h < halves.Length; h++)
                        ((ushort*)dst)[RowsPerGroup * h + r] = *(ushort*)(block + halves[h]);
                    byte* bytesDst = dst + 2 * RowsPerGroup * halves.Length;
                    for (int i = 0; i < scaleBytes.Length; i++)
                        bytesDst[RowsPerGroup * i + r] = block[scaleBytes[i]];
                    byte* wordsDst = bytesDst + RowsPerGroup * scaleBytes.Length;
                    for (int v = 0; v < words.Length; v++)
                        *(uint*)(wordsDst + v * 32 + r * 4) = *(uint*)(block + words[v]);
                }
            }
        }
    }

    public void Dispose()
    {
        if (_data == null) return;
        _data = null;
        HugePageSlabs.Free(_slab);
    }
}
