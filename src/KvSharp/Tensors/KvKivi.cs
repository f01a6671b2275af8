using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// KIVI-style KV elements (Liu et al., 2024, "KIVI: a tuning-free asymmetric 2bit quantization for KV cache"): rows
/// are quantized <see cref="GroupRows"/> at a time, keys per channel (<see cref="KiviPerChannel"/>) and values per
/// token (<see cref="KiviPerToken"/>), to <typeparamref name="TBits"/>-bit codes with a binary16 min and scale per
/// set (<see cref="KiviQuantizer"/>). The newest rows stay as exact floats (KIVI's residual): the group being filled,
/// and, past it, the newest <see cref="IKiviAxis.ExactRows"/> (64 for keys, 0 for values); a group is quantized
/// whole once it is complete and that many newer rows follow it. Per-channel keys are what makes 4 bits work where per-token Q4_0 does not: a key channel with large values
/// (an outlier channel) sets only its own scale.
/// Keys before RoPE (KVQuant, Hooper et al. 2024): given the model's rotary angles (<see cref="RotaryTable"/>, which
/// a contiguous cache passes for its keys), a group is rotated back to its position-free form before it is quantized,
/// and each quantized row is rotated by its position's angles when it is read. A post-RoPE channel of a fast-turning
/// pair (the first pair turns ~1 radian per token) swings over its whole range within a group of 32, so per-channel
/// codes along tokens fit it badly; before RoPE a channel's values are steady, as per-channel quantization wants.
/// Pending rows stay as written (rotated, exact). Reads are right whatever rotation is given (the same angles undo what
/// they did, to within float rounding); the model's own angles make the quantized form the one that fits best.
/// Layout of a head's planes: row r's codes in the element plane at r x RowBytes; at the start of the side plane a
/// 32-byte header (the first pending row, the pending buffer's capacity and its address; the rotary table's address,
/// its dimensions (0 for none) and layout), then the quantized groups'
/// side data, group g (rows g x GroupRows ..) at header + g x GroupRows x SideBytes. The pending rows live in a
/// pinned buffer the cache keeps (<see cref="IKvElement{TSelf}.Prepare"/>): a step's rows are written in parallel and
/// in any order, so a group is quantized only once the step's rows are all written
/// (<see cref="IKvElement{TSelf}.Settle"/>, before attention reads them). A truncation into a quantized group reads that group's rows before the cut
/// back into the pending rows (as quantized: quantizing them again when the group refills can move them by up to one
/// more half step). Rows do not stand alone (<see cref="IKvElement{TSelf}.RowsStandAlone"/>): paged caches, prefix
/// sharing and context shift refuse the type. Attention reads every row as floats from a tile
/// (<see cref="ReadRows"/>: a run of a group's rows at once, codes eight at a time), and reads what is stored when it runs: a prefill that fills a group
/// reads that group quantized for all its queries, so prefill and one-token decode agree within the quantization
/// error rather than bit for bit.
/// </summary>
public readonly struct KvKivi<TBits, TAxis> : IKvElement<KvKivi<TBits, TAxis>> where TBits : struct, IKiviBits where TAxis : struct, IKiviAxis
{
    public static string Name => TBits.Name;

    public static int RowBytes(int headDim) => (headDim * TBits.Bits + 7) / 8;

    public static int SideBytes(int headDim) => TAxis.SideBytes(headDim);

    /// <summary>The first pending row, the pending buffer's capacity in rows and its address (pinned); the rotary table's address, dimensions and layout.</summary>
    public static int SideHeaderBytes(int headDim) => HeaderBytes;

    private const int HeaderBytes = 32;

    public static bool RowsStandAlone => false;

    /// <summary>A single row cannot be quantized on its own; the caches store rows through <see cref="WriteRow"/>.</summary>
    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) =>
        throw new NotSupportedException($"{Name} quantizes rows {KvKivi.GroupRows} at a time; store them with WriteRow");

    /// <summary>Rows are read by index (<see cref="ReadRow"/>): a row alone does not say where its group's parameters are.</summary>
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        throw new NotSupportedException($"{Name} rows are read with ReadRow, which finds their group");

    // The side header's fields (SideHeaderBytes), by byte offset, for the span that writes them and the reads that
    // hold only a reference to the plane's start.
    private static ref int PendingStart(ref byte side) => ref Unsafe.As<byte, int>(ref side);
    private static ref int PendingCapacity(ref byte side) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref side, 4));
    private static ref long PendingAddress(ref byte side) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref side, 8));
    private static ref long RotationAddress(ref byte side) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref side, 16));
    private static ref int RotationDims(ref byte side) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref side, 24));
    private static ref int RotationPairsHalves(ref byte side) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref side, 28));

    private static ref int PendingStart(Span<byte> side) => ref PendingStart(ref Header(side));
    private static ref int PendingCapacity(Span<byte> side) => ref PendingCapacity(ref Header(side));
    private static ref long PendingAddress(Span<byte> side) => ref PendingAddress(ref Header(side));
    private static ref long RotationAddress(Span<byte> side) => ref RotationAddress(ref Header(side));
    private static ref int RotationDims(Span<byte> side) => ref RotationDims(ref Header(side));
    private static ref int RotationPairsHalves(Span<byte> side) => ref RotationPairsHalves(ref Header(side));

    /// <summary>The header's first byte, checked to lie within <paramref name="side"/>.</summary>
    private static ref byte Header(Span<byte> side) => ref MemoryMarshal.GetReference(side[..HeaderBytes]);

    /// <summary>The pending rows (first pending row first), in the pinned buffer whose address the header keeps.</summary>
    private static unsafe Span<float> Pending(Span<byte> side, int headDim) =>
        new((void*)PendingAddress(side), PendingCapacity(side) * headDim);

    /// <summary>
    /// Grows the pending buffer (pinned, so the header can point at it) to hold every row up to <paramref name="length"/>,
    /// and, given <paramref name="rotation"/>, covers those positions in it and keeps its address (keys before RoPE).
    /// </summary>
    public static void Prepare(Span<byte> side, int length, int headDim, ref float[]? pending, RotaryTable? rotation)
    {
        if (rotation != null)
        {
            if (rotation.Dims > headDim)
                throw new ArgumentException($"the rotary table turns {rotation.Dims} dimensions, more than a row's {headDim}", nameof(rotation));
            rotation.Cover(length);
            RotationAddress(side) = rotation.Address;
            RotationDims(side) = rotation.Dims;
            RotationPairsHalves(side) = rotation.PairsHalves ? 1 : 0;
        }
        int rows = Math.Max(KvKivi.GroupRows + TAxis.ExactRows, length - PendingStart(side));
        if (pending != null && PendingCapacity(side) >= rows) return;
        var grown = GC.AllocateArray<float>(rows * headDim, pinned: true);
        if (pending != null) Pending(side, headDim).CopyTo(grown);
        pending = grown;
        PendingAddress(side) = Marshal.UnsafeAddrOfPinnedArrayElement(grown, 0);
        PendingCapacity(side) = rows;
    }

    /// <summary>Stores a row as exact floats among the pending rows; rows of a step may arrive in any order, from any thread.</summary>
    public static void WriteRow(ReadOnlySpan<float> source, Span<byte> rows, Span<byte> side, int row, int headDim)
    {
        int start = PendingStart(side);
        if (row < start || row - start >= PendingCapacity(side))
            throw new InvalidOperationException(
                $"{Name} row {row} is outside the pending rows [{start}, {start + PendingCapacity(side)}): rows are quantized up to {start}, and the cache reserves the rest before writing");
        source[..headDim].CopyTo(Pending(side, headDim)[((row - start) * headDim)..]);
    }

    /// <summary>Quantizes every complete group of pending rows below <paramref name="end"/>, and moves the rest to the buffer's start.</summary>
    public static void Settle(Span<byte> rows, Span<byte> side, int end, int headDim)
    {
        int start = PendingStart(side), group = KvKivi.GroupRows;
        if (start + group + TAxis.ExactRows > end) return;
        int rowBytes = RowBytes(headDim), sideBytes = SideBytes(headDim), header = SideHeaderBytes(headDim);
        Span<float> pending = Pending(side, headDim);
        int done = 0;
        for (; start + done + group + TAxis.ExactRows <= end; done += group)
        {
            int first = start + done;
            if (RotationDims(side) != 0) Unrotate(side, pending.Slice(done * headDim, group * headDim), first, headDim);
            Span<byte> codes = rows.Slice(first * rowBytes, group * rowBytes);
            codes.Clear();
            TAxis.Quantize(pending.Slice(done * headDim, group * headDim), headDim, TBits.Bits, rowBytes, codes,
                side.Slice(header + first * sideBytes, group * sideBytes));
        }
        pending[(done * headDim)..].CopyTo(pending);
        pending[^(done * headDim)..].Clear();
        PendingStart(side) = start + done;
    }

    /// <summary>Turns rows at positions <paramref name="first"/>.. back by their rotary angles, in place: keys before RoPE.</summary>
    private static unsafe void Unrotate(Span<byte> side, Span<float> rows, int first, int headDim)
    {
        int dims = RotationDims(side);
        float* table = (float*)RotationAddress(side);
        bool halves = RotationPairsHalves(side) != 0;
        for (int r = 0; r < rows.Length / headDim; r++)
            RotaryTable.Unrotate(rows.Slice(r * headDim, headDim), table + (nint)(first + r) * dims, dims, halves);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ReadRow(scoped in KvPlanes planes, nint row, int headDim, ref float destination)
    {
        int start = PendingStart(ref planes.Side);
        if (row >= start)
        {
            float* pending = (float*)PendingAddress(ref planes.Side);
            if (pending == null)
            {
                // Nothing was ever written to this head: the row reads as zeros, as an unwritten row of any type.
                MemoryMarshal.CreateSpan(ref destination, headDim).Clear();
                return;
            }
            Unsafe.CopyBlockUnaligned(ref Unsafe.As<float, byte>(ref destination), ref *(byte*)(pending + (row - start) * headDim),
                (uint)(headDim * sizeof(float)));
            return;
        }
        int inGroup = (int)(row % KvKivi.GroupRows);
        ref byte groupSide = ref Unsafe.Add(ref planes.Side, SideHeaderBytes(headDim) + (row - inGroup) * SideBytes(headDim));
        TAxis.Read(ref Unsafe.Add(ref planes.Elements, row * RowBytes(headDim)), ref groupSide, inGroup, headDim, TBits.Bits, ref destination);
        int dims = RotationDims(ref planes.Side);
        if (dims != 0)
            RotaryTable.Rotate(ref destination, (float*)RotationAddress(ref planes.Side) + row * dims, dims, RotationPairsHalves(ref planes.Side) != 0);
    }

    /// <summary>
    /// A tile of rows: each run of consecutive rows inside one quantized group is read at once
    /// (<see cref="IKiviAxis.ReadRun"/>: the group's parameters widened once, codes eight at a time) and rotated row by
    /// row; pending rows are copied. The same floats as <see cref="ReadRow"/> per row, bit for bit.
    /// </summary>
    public static unsafe void ReadRows(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, ref float destination)
    {
        int start = PendingStart(ref planes.Side), dims = RotationDims(ref planes.Side);
        float* table = (float*)RotationAddress(ref planes.Side);
        bool halves = RotationPairsHalves(ref planes.Side) != 0;
        int rowBytes = RowBytes(headDim), sideBytes = SideBytes(headDim), header = SideHeaderBytes(headDim);
        for (int j = 0; j < rows.Length;)
        {
            nint row = rows[j];
            ref float to = ref Unsafe.Add(ref destination, j * headDim);
            if (row >= start)
            {
                ReadRow(planes, row, headDim, ref to);
                j++;
                continue;
            }
            int inGroup = (int)(row % KvKivi.GroupRows), run = 1;
            nint end = Math.Min(row - inGroup + KvKivi.GroupRows, start);
            while (j + run < rows.Length && rows[j + run] == row + run && row + run < end) run++;
            TAxis.ReadRun(ref Unsafe.Add(ref planes.Elements, row * rowBytes), rowBytes,
                ref Unsafe.Add(ref planes.Side, header + (row - inGroup) * sideBytes), inGroup, run, headDim, TBits.Bits, ref to);
            if (dims != 0)
                for (int r = 0; r < run; r++) RotaryTable.Rotate(ref Unsafe.Add(ref to, r * headDim), table + (row + r) * dims, dims, halves);
            j += run;
        }
    }

    /// <summary>
    /// Forgets rows [from, to): a cut inside a quantized group reads the group's rows before it back into the pending
    /// rows, and every byte of the forgotten rows (codes, parameters, pending floats) is zeroed.
    /// </summary>
    public static void ClearRows(Span<byte> rows, Span<byte> side, int from, int to, int headDim)
    {
        if (PendingCapacity(side) == 0) return; // nothing was ever written
        int start = PendingStart(side), group = KvKivi.GroupRows, rowBytes = RowBytes(headDim), sideBytes = SideBytes(headDim);
        int header = SideHeaderBytes(headDim);
        Span<float> pending = Pending(side, headDim);
        if (from < start)
        {
            // The pending buffer holds at least a group, so the kept rows of the cut group fit.
            int first = from - from % group;
            var planes = new KvPlanes(ref MemoryMarshal.GetReference(rows), ref MemoryMarshal.GetReference(side));
            var kept = new float[(from - first) * headDim]; // truncation, not a per-token path
            for (int r = first; r < from; r++) ReadRow(planes, r, headDim, ref kept[(r - first) * headDim]);
            rows[(first * rowBytes)..(start * rowBytes)].Clear();
            side[(header + first * sideBytes)..(header + start * sideBytes)].Clear();
            pending.Clear();
            kept.CopyTo(pending);
            PendingStart(side) = start = first;
        }
        pending[(Math.Max(0, from - start) * headDim)..].Clear();
    }
}

/// <summary>KIVI's shared constants, and the key and value types of kivi4 and kivi2.</summary>
public static class KvKivi
{
    /// <summary>Rows quantized together, and the most rows kept as exact floats until then (KIVI's G and R).</summary>
    public const int GroupRows = 32;
}
