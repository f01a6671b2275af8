using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KvSharp.Tensors;

/// <summary>
/// KIVI-style KV elements (Liu et al., 2024, "KIVI: a tuning-free asymmetric 2bit quantization for KV cache"): rows
/// are quantized <see cref="KvKivi.GroupRows"/> at a time, keys per channel (<see cref="KiviPerChannel"/>) and values per
/// token (<see cref="KiviPerToken"/>), to <typeparamref name="TBits"/>-bit codes with a binary16 min and scale per
/// set (<see cref="KiviQuantizer"/>). The newest rows stay as exact floats (KIVI's residual): a query at position q
/// reads group g (positions [32g, 32g + 32)) quantized once 32g + 32 + <see cref="IKiviAxis.ExactRows"/> &lt;= q + 1
/// (64 more rows for keys, 0 for values), and exact before. That view depends on the query's position alone, not on
/// how the positions were split into steps: a group that turns within a step is quantized at the step's start and its
/// exact rows kept until the step's last query has read them, and the attention kernel reads it exact for the step's
/// earlier queries and quantized for the later ones (<see cref="ExactBefore"/>). So a prefill gives the bits of a
/// token-by-token decode, and a batch, a chunked prompt or a recompute after preemption changes nothing.
/// Per-channel keys are what makes 4 bits work where per-token Q4_0 does not: a key channel with large values
/// (an outlier channel) sets only its own scale.
/// Keys before RoPE (KVQuant, Hooper et al. 2024): given the model's rotary angles (<see cref="RotaryTable"/>), a group
/// is rotated back to its position-free form before it is quantized, and each quantized row is rotated by its
/// position's angles when it is read. A post-RoPE channel of a fast-turning pair (the first pair turns ~1 radian per
/// token) swings over its whole range within a group of 32, so per-channel codes along tokens fit it badly; before
/// RoPE a channel's values are steady, as per-channel quantization wants. Pending rows stay as written (rotated,
/// exact). Reads are right whatever rotation is given (the same angles undo what they did, to within float rounding).
/// Layout: a head's side plane starts with a <see cref="HeaderBytes"/> header (the pending rows' first position, count
/// and pinned address; the first position not quantized; the rotary table; and, for a head in a paged pool
/// (<see cref="KvPaging"/>), where its blocks are). Contiguous, row r is position r: its codes in the element plane at
/// r x RowBytes, its group's side data right after the header at (r - r mod 32) x SideBytes. Paged, the header lives
/// with the sequence and row indices are the pool's: codes at row x RowBytes of the pool's plane, the group's side
/// data in the pool's side plane at its first row, and a row's position from the pool's block positions (a group
/// never straddles blocks: the block size is a multiple of 32). The pending rows live in a pinned buffer the cache
/// keeps (<see cref="IKvElement{TSelf}.Prepare"/>), never in a shared block: a step's rows are written in parallel and
/// in any order, so groups are quantized only once the step's rows are all written (<see cref="IKvElement{TSelf}.Settle"/>,
/// before attention reads them). A truncation into a quantized group whose exact rows are gone reads that group's rows
/// before the cut back into the pending rows (as quantized). Rows do not stand alone
/// (<see cref="IKvElement{TSelf}.RowsStandAlone"/>): caches that move rows (context shift, windows, prefix sharing)
/// refuse the type.
/// </summary>
public readonly struct KvKivi<TBits, TAxis> : IKvElement<KvKivi<TBits, TAxis>> where TBits : struct, IKiviBits where TAxis : struct, IKiviAxis
{
    public static string Name => TBits.Name;

    public static int RowBytes(int headDim) => (headDim * TBits.Bits + 7) / 8;

    public static int SideBytes(int headDim) => TAxis.SideBytes(headDim);

    /// <summary>The header at the start of a head's side plane (<see cref="KvKivi{TBits, TAxis}"/>'s layout).</summary>
    public static int SideHeaderBytes(int headDim) => HeaderBytes;

    /// <summary>Bytes of a head's header: pending rows, quantized end, rotary table, paging.</summary>
    public const int HeaderBytes = 96;

    public static bool RowsStandAlone => false;

    /// <summary>The pending buffer's least capacity: the filling group and the exact rows after the newest quantized one.</summary>
    public static int PendingRows => KvKivi.GroupRows + TAxis.ExactRows;

    public static bool ViewDependsOnQuery => true;

    /// <summary>A single row cannot be quantized on its own; the caches store rows through <see cref="WriteRow"/>.</summary>
    public static void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side) =>
        throw new NotSupportedException($"{Name} quantizes rows {KvKivi.GroupRows} at a time; store them with WriteRow");

    /// <summary>Rows are read by index (<see cref="ReadRow"/>): a row alone does not say where its group's parameters are.</summary>
    public static void Read(ref byte row, ref byte side, int headDim, ref float destination) =>
        throw new NotSupportedException($"{Name} rows are read with ReadRow, which finds their group");

    // The header's fields, by byte offset.
    private static ref int PendingStart(ref byte h) => ref Unsafe.As<byte, int>(ref h);
    private static ref int PendingCapacity(ref byte h) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref h, 4));
    private static ref long PendingAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 8));
    private static ref long RotationAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 16));
    private static ref int RotationDims(ref byte h) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref h, 24));
    private static ref int RotationPairsHalves(ref byte h) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref h, 28));
    /// <summary>Positions below this are quantized (codes written); at or past PendingStart they are also still exact.</summary>
    private static ref int QuantizedEnd(ref byte h) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref h, 32));
    /// <summary>0 for a contiguous head (row = position); else the pool's block size.</summary>
    private static ref int BlockSize(ref byte h) => ref Unsafe.As<byte, int>(ref Unsafe.Add(ref h, 36));
    private static ref long TableAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 40));
    private static ref long PositionsAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 48));
    private static ref long CodesAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 56));
    private static ref long SidePlaneAddress(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 64));
    private static ref long RowsPerSide(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 72));
    private static ref long HeadOffset(ref byte h) => ref Unsafe.As<byte, long>(ref Unsafe.Add(ref h, 80));

    /// <summary>The header's first byte, checked to lie within <paramref name="side"/>.</summary>
    private static ref byte Header(Span<byte> side) => ref MemoryMarshal.GetReference(side[..HeaderBytes]);

    /// <summary>The pending rows (position PendingStart first), in the pinned buffer whose address the header keeps.</summary>
    private static unsafe Span<float> Pending(ref byte h, int headDim) => new((void*)PendingAddress(ref h), PendingCapacity(ref h) * headDim);

    /// <summary>The position of row index <paramref name="row"/>: itself, or in a pool its block's first position plus its slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int PositionOf(ref byte h, nint row)
    {
        int size = BlockSize(ref h);
        if (size == 0) return (int)row;
        long rowsPerSide = RowsPerSide(ref h);
        return ((int*)PositionsAddress(ref h))[row / rowsPerSide] + (int)(row % size);
    }

    /// <summary>The side data of the group whose first row index is <paramref name="first"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe ref byte GroupSide(ref byte h, nint first, int headDim) => ref BlockSize(ref h) == 0
        ? ref Unsafe.Add(ref h, HeaderBytes + first * SideBytes(headDim))
        : ref *((byte*)SidePlaneAddress(ref h) + first * SideBytes(headDim));

    /// <summary>The row index of <paramref name="position"/>: itself, or its place in the pool through the block table.</summary>
    private static unsafe nint RowOf(ref byte h, int position)
    {
        int size = BlockSize(ref h);
        if (size == 0) return position;
        int block = ((int*)TableAddress(ref h))[position / size];
        return (nint)(block * RowsPerSide(ref h) + HeadOffset(ref h) + position % size);
    }

    /// <summary>The first group start whose rows a query at <paramref name="reader"/> reads exact (all of them before: quantized).</summary>
    private static int QuantizedFor(long reader) => (int)Math.Clamp((reader + 1 - TAxis.ExactRows) / KvKivi.GroupRows * KvKivi.GroupRows, 0, int.MaxValue);

    /// <summary>Positions at and past this read exact for a query at <paramref name="reader"/>; the ones before, quantized.</summary>
    private static int ExactFrom(ref byte h, long reader) =>
        Math.Min(QuantizedEnd(ref h), Math.Max(PendingStart(ref h), QuantizedFor(reader)));

    /// <summary>Binds a head's header to its place in a paged pool: the block table and block positions it reads through, and its planes.</summary>
    public static void Page(Span<byte> side, in KvPaging paging)
    {
        ref byte h = ref Header(side);
        BlockSize(ref h) = paging.BlockSize;
        TableAddress(ref h) = paging.Table;
        PositionsAddress(ref h) = paging.Positions;
        CodesAddress(ref h) = paging.Codes;
        SidePlaneAddress(ref h) = paging.Side;
        RowsPerSide(ref h) = paging.RowsPerSide;
        HeadOffset(ref h) = paging.HeadOffset;
    }

    /// <summary>
    /// Grows the pending buffer (pinned, so the header can point at it, and copied as it was when a fork's header came
    /// with another's) to hold every row up to <paramref name="length"/>,
    /// and, given <paramref name="rotation"/>, covers those positions in it and keeps its address (keys before RoPE).
    /// </summary>
    public static void Prepare(Span<byte> side, int length, int headDim, ref float[]? pending, RotaryTable? rotation)
    {
        ref byte h = ref Header(side);
        if (rotation != null)
        {
            if (rotation.Dims > headDim)
                throw new ArgumentException($"the rotary table turns {rotation.Dims} dimensions, more than a row's {headDim}", nameof(rotation));
            rotation.Cover(length);
            RotationAddress(ref h) = rotation.Address;
            RotationDims(ref h) = rotation.Dims;
            RotationPairsHalves(ref h) = rotation.PairsHalves ? 1 : 0;
        }
        int rows = Math.Max(PendingRows, length - PendingStart(ref h));
        if (pending != null && PendingCapacity(ref h) >= rows)
        {
            // The buffer may be a copy the header has not seen (a fork's).
            PendingAddress(ref h) = Marshal.UnsafeAddrOfPinnedArrayElement(pending, 0);
            return;
        }
        var grown = GC.AllocateArray<float>(rows * headDim, pinned: true);
        pending?.CopyTo(grown, 0);
        pending = grown;
        PendingAddress(ref h) = Marshal.UnsafeAddrOfPinnedArrayElement(grown, 0);
        PendingCapacity(ref h) = rows;
    }

    /// <summary>
    /// Stores the row at <paramref name="row"/> (its position) as exact floats among the pending rows; rows of a step
    /// may arrive in any order, from any thread. <paramref name="rows"/> is not touched: rows are quantized in <see cref="Settle"/>.
    /// </summary>
    public static void WriteRow(ReadOnlySpan<float> source, Span<byte> rows, Span<byte> side, int row, int headDim)
    {
        ref byte h = ref Header(side);
        int start = PendingStart(ref h);
        if (row < Math.Max(start, QuantizedEnd(ref h)) || row - start >= PendingCapacity(ref h))
            throw new InvalidOperationException(
                $"{Name} row {row} is outside the pending rows [{Math.Max(start, QuantizedEnd(ref h))}, {start + PendingCapacity(ref h)}): rows are quantized up to {QuantizedEnd(ref h)}, and the cache reserves the rest before writing");
        source[..headDim].CopyTo(Pending(ref h, headDim)[((row - start) * headDim)..]);
    }

    // Settle's copy of a group being rotated back before it is quantized: the exact rows stay as written.
    [ThreadStatic] private static float[]? t_group;

    /// <summary>
    /// For a step of positions [<paramref name="from"/>, <paramref name="end"/>): quantizes every group its last query
    /// reads quantized, and lets go of the exact rows of the groups its first query already reads quantized.
    /// </summary>
    public static void Settle(Span<byte> rows, Span<byte> side, int from, int end, int headDim)
    {
        ref byte h = ref Header(side);
        int start = PendingStart(ref h), quantized = QuantizedEnd(ref h), group = KvKivi.GroupRows;
        int target = QuantizedFor(end - 1);
        if (target <= quantized && QuantizedFor(from) <= start) return;
        int rowBytes = RowBytes(headDim), sideBytes = SideBytes(headDim);
        Span<float> pending = Pending(ref h, headDim);
        for (int first = quantized; first < target; first += group)
        {
            Span<float> exact = pending.Slice((first - start) * headDim, group * headDim);
            if (RotationDims(ref h) != 0)
            {
                var copy = t_group is { } buffer && buffer.Length >= exact.Length ? buffer : t_group = new float[exact.Length];
                exact.CopyTo(copy);
                exact = copy.AsSpan(0, exact.Length);
                Unrotate(ref h, exact, first, headDim);
            }
            Span<byte> codes = GroupCodes(ref h, rows, first, rowBytes);
            codes.Clear();
            nint row = RowOf(ref h, first);
            TAxis.Quantize(exact, headDim, TBits.Bits, rowBytes, codes, MemoryMarshal.CreateSpan(ref GroupSide(ref h, row, headDim), group * sideBytes));
        }
        QuantizedEnd(ref h) = Math.Max(quantized, target);
        int kept = Math.Max(start, Math.Min(QuantizedEnd(ref h), QuantizedFor(from)));
        if (kept == start) return;
        int done = (kept - start) * headDim;
        pending[done..].CopyTo(pending);
        pending[^done..].Clear();
        PendingStart(ref h) = kept;
    }

    /// <summary>The start of the element plane the header's rows index: the one given, or the pool's.</summary>
    private static unsafe ref byte Elements(ref byte h, Span<byte> rows) =>
        ref BlockSize(ref h) == 0 ? ref MemoryMarshal.GetReference(rows) : ref *(byte*)CodesAddress(ref h);

    /// <summary>The codes of the group starting at position <paramref name="first"/>: in the plane given, or in the pool's block.</summary>
    private static unsafe Span<byte> GroupCodes(ref byte h, Span<byte> rows, int first, int rowBytes) => BlockSize(ref h) == 0
        ? rows.Slice(first * rowBytes, KvKivi.GroupRows * rowBytes)
        : new Span<byte>((byte*)CodesAddress(ref h) + RowOf(ref h, first) * rowBytes, KvKivi.GroupRows * rowBytes);

    /// <summary>Turns rows at positions <paramref name="first"/>.. back by their rotary angles, in place: keys before RoPE.</summary>
    private static unsafe void Unrotate(ref byte h, Span<float> rows, int first, int headDim)
    {
        int dims = RotationDims(ref h);
        float* table = (float*)RotationAddress(ref h);
        bool halves = RotationPairsHalves(ref h) != 0;
        for (int r = 0; r < rows.Length / headDim; r++)
            RotaryTable.Unrotate(rows.Slice(r * headDim, headDim), table + (nint)(first + r) * dims, dims, halves);
    }

    /// <summary>The position from which queries read the group at <paramref name="tileStart"/> quantized, where it is held both ways; else int.MaxValue.</summary>
    public static int ExactBefore(scoped in KvPlanes planes, int tileStart, int headDim)
    {
        ref byte h = ref planes.Side;
        return tileStart >= PendingStart(ref h) && tileStart < QuantizedEnd(ref h) ? tileStart + KvKivi.GroupRows + TAxis.ExactRows - 1 : int.MaxValue;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReadRow(scoped in KvPlanes planes, nint row, int headDim, ref float destination) =>
        ReadRows(planes, MemoryMarshal.CreateReadOnlySpan(ref row, 1), headDim, ref destination, int.MaxValue);

    public static void ReadRows(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, ref float destination) =>
        ReadRows(planes, rows, headDim, ref destination, int.MaxValue);

    /// <summary>
    /// A tile of rows as a query at <paramref name="reader"/> reads them: each run of consecutive rows inside one
    /// quantized group is read at once (<see cref="IKiviAxis.ReadRun"/>: the group's parameters widened once, codes
    /// eight at a time) and rotated row by row; exact rows are copied. The same floats per row however the rows are grouped.
    /// </summary>
    public static unsafe void ReadRows(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, ref float destination, int reader)
    {
        ref byte h = ref planes.Side;
        int start = PendingStart(ref h), exactFrom = ExactFrom(ref h, reader), dims = RotationDims(ref h);
        float* table = (float*)RotationAddress(ref h), pending = (float*)PendingAddress(ref h);
        bool halves = RotationPairsHalves(ref h) != 0;
        int rowBytes = RowBytes(headDim);
        for (int j = 0; j < rows.Length;)
        {
            nint row = rows[j];
            int position = PositionOf(ref h, row);
            ref float to = ref Unsafe.Add(ref destination, j * headDim);
            if (position >= exactFrom)
            {
                if (pending == null) MemoryMarshal.CreateSpan(ref to, headDim).Clear(); // nothing was ever written to this head
                else Unsafe.CopyBlockUnaligned(ref Unsafe.As<float, byte>(ref to), ref *(byte*)(pending + (nint)(position - start) * headDim),
                    (uint)(headDim * sizeof(float)));
                j++;
                continue;
            }
            int inGroup = position % KvKivi.GroupRows, run = 1, end = Math.Min(position - inGroup + KvKivi.GroupRows, exactFrom);
            while (j + run < rows.Length && rows[j + run] == row + run && position + run < end) run++;
            TAxis.ReadRun(ref Unsafe.Add(ref planes.Elements, row * rowBytes), rowBytes, ref GroupSide(ref h, row - inGroup, headDim), inGroup, run,
                headDim, TBits.Bits, ref to);
            if (dims != 0)
                for (int r = 0; r < run; r++) RotaryTable.Rotate(ref Unsafe.Add(ref to, r * headDim), table + (nint)(position + r) * dims, dims, halves);
            j += run;
        }
    }

    /// <summary>
    /// Forgets positions [from, to): a cut inside a quantized group drops the codes from that group on, keeping its
    /// rows before the cut exact where they still are, else read back (as quantized) into the pending rows. A
    /// contiguous head's forgotten bytes (codes, parameters, pending floats) are zeroed; a paged head's codes stay in its
    /// blocks until rewritten (a block may be shared with a fork that still reads them).
    /// </summary>
    public static void ClearRows(Span<byte> rows, Span<byte> side, int from, int to, int headDim)
    {
        ref byte h = ref Header(side);
        if (PendingCapacity(ref h) == 0) return; // nothing was ever written
        int start = PendingStart(ref h), quantized = QuantizedEnd(ref h), group = KvKivi.GroupRows;
        Span<float> pending = Pending(ref h, headDim);
        if (from < quantized)
        {
            int first = from - from % group;
            if (first < start)
            {
                // The pending buffer holds at least a group, so the kept rows of the cut group fit.
                var kept = new float[(from - first) * headDim]; // truncation, not a per-token path
                var planes = new KvPlanes(ref Elements(ref h, rows), ref h);
                for (int r = first; r < from; r++) ReadRow(planes, RowOf(ref h, r), headDim, ref kept[(r - first) * headDim]);
                pending.Clear();
                kept.CopyTo(pending);
                PendingStart(ref h) = start = first;
            }
            if (BlockSize(ref h) == 0)
            {
                int rowBytes = RowBytes(headDim), sideBytes = SideBytes(headDim);
                rows[(first * rowBytes)..(quantized * rowBytes)].Clear();
                side[(HeaderBytes + first * sideBytes)..(HeaderBytes + quantized * sideBytes)].Clear();
            }
            QuantizedEnd(ref h) = first;
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
