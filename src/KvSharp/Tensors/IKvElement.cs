using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KvSharp.Tensors;

/// <summary>
/// One way of storing cached keys and values (F32, F16, Q8_0, ...), as a strategy the caches and the attention kernel
/// are generic over: a struct per type whose static members the JIT compiles into each specialisation, so there is no
/// virtual call per row. The strategy owns the storage layout of a row of head_dim elements (bytes in the element
/// plane, and optionally per-row side data such as Q8_0's scales in a second plane), how a row is written (rounded,
/// quantized), how it is read back as floats, and which bytes a prefetch asks for.
/// A new type implements <see cref="RowBytes"/>, <see cref="Write"/> and <see cref="Read"/> (and
/// <see cref="SideBytes"/> if it has side data): the attention kernel then reads a tile of its rows into floats and runs
/// the float kernel on them. A type may also read its rows in the kernel's registers (<see cref="MaxQueriesInRegisters"/>
/// and the loads below), as F32, F16 and Q8_0 do.
/// </summary>
/// <typeparam name="TSelf">The implementing struct.</typeparam>
public interface IKvElement<TSelf> where TSelf : struct, IKvElement<TSelf>
{
    /// <summary>The type's name in messages ("F32", "Q8_0"); a built-in type's name is its <c>KvElementType</c>.</summary>
    static abstract string Name { get; }

    /// <summary>Bytes one row of <paramref name="headDim"/> elements takes in the element plane.</summary>
    static abstract int RowBytes(int headDim);

    /// <summary>Bytes of side data per row (in a second plane, row r's at r x SideBytes); 0 for none.</summary>
    static virtual int SideBytes(int headDim) => 0;

    /// <summary>Stores one row of keys or values: its elements in <paramref name="row"/>, its side data in <paramref name="side"/>.</summary>
    static abstract void Write(ReadOnlySpan<float> source, Span<byte> row, Span<byte> side);

    /// <summary>
    /// The floats a stored row stands for, written to <paramref name="destination"/> (<paramref name="headDim"/> of
    /// them). The caller guarantees the ranges: this is the attention kernel's inner loop for types read from a tile.
    /// </summary>
    static abstract void Read(ref byte row, ref byte side, int headDim, ref float destination);

    /// <summary>
    /// Bytes at the start of a head's side plane, before row 0's side data: 0 (the default) for a type whose rows each
    /// stand alone. A type that quantizes groups of rows together keeps its pending rows there (KIVI).
    /// </summary>
    static virtual int SideHeaderBytes(int headDim) => 0;

    /// <summary>
    /// True (the default) when each row is stored on its own: written once, read alone, copied or moved as bytes, so
    /// paging, prefix sharing and context shift can move rows about. False for a type whose rows are quantized in
    /// groups along positions (KIVI): a paged pool keeps its pending rows with each sequence (<see cref="Page"/>) and
    /// shares no prefix blocks of it, and the caches that move or overwrite rows (context shift, windows) refuse it.
    /// </summary>
    static virtual bool RowsStandAlone => true;

    /// <summary>
    /// Stores row <paramref name="row"/> of a head whose element and side planes are <paramref name="rows"/> and
    /// <paramref name="side"/> (side header included); by default <see cref="Write"/> at the row's place.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void WriteRow(ReadOnlySpan<float> source, Span<byte> rows, Span<byte> side, int row, int headDim)
    {
        int rowBytes = TSelf.RowBytes(headDim), sideBytes = TSelf.SideBytes(headDim);
        TSelf.Write(source, rows.Slice(row * rowBytes, rowBytes), side.Slice(TSelf.SideHeaderBytes(headDim) + row * sideBytes, sideBytes));
    }

    /// <summary>
    /// The floats row <paramref name="row"/> of the planes stands for (the tile path of the attention kernel, and
    /// reads of single rows); by default <see cref="Read"/> at the row's place. The caller guarantees the ranges.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void ReadRow(scoped in KvPlanes planes, nint row, int headDim, ref float destination) =>
        TSelf.Read(ref Unsafe.Add(ref planes.Elements, row * TSelf.RowBytes(headDim)),
            ref Unsafe.Add(ref planes.Side, TSelf.SideHeaderBytes(headDim) + row * TSelf.SideBytes(headDim)), headDim, ref destination);

    /// <summary>
    /// The floats of rows <paramref name="rows"/> (row indices), one after another from <paramref name="destination"/>:
    /// a tile the attention kernel reads as floats. By default <see cref="ReadRow"/> per row; a type whose rows share
    /// parameters (KIVI's groups) reads a run of them at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void ReadRows(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, ref float destination)
    {
        for (int j = 0; j < rows.Length; j++, destination = ref Unsafe.Add(ref destination, headDim)) TSelf.ReadRow(planes, rows[j], headDim, ref destination);
    }

    /// <summary>
    /// Rows of head_dim floats a head keeps beside its planes (exact, not yet quantized) at least: KIVI's filling group
    /// and its exact rows. Memory a sequence holds whatever its length, which bytes per token leave out. 0 by default.
    /// </summary>
    static virtual int PendingRows => 0;

    /// <summary>
    /// True for a type whose rows a query reads one way or another depending on the query's position (KIVI: a group
    /// turns from exact to quantized once enough newer rows follow it): the attention kernel then asks
    /// <see cref="ExactBefore"/> per tile and reads the tile once per view. False (the default): one view for all.
    /// </summary>
    static virtual bool ViewDependsOnQuery => false;

    /// <summary>
    /// For a type whose view depends on the query: the first query position that reads the rows of the tile at
    /// <paramref name="tileStart"/> as quantized while the queries before read them exact, or int.MaxValue where every
    /// query reads the tile alike.
    /// </summary>
    static virtual int ExactBefore(scoped in KvPlanes planes, int tileStart, int headDim) => int.MaxValue;

    /// <summary>
    /// <see cref="ReadRows(in KvPlanes, ReadOnlySpan{nint}, int, ref float)"/> as a query at position
    /// <paramref name="reader"/> reads them; the same unless <see cref="ViewDependsOnQuery"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void ReadRows(scoped in KvPlanes planes, ReadOnlySpan<nint> rows, int headDim, ref float destination, int reader) =>
        TSelf.ReadRows(planes, rows, headDim, ref destination);

    /// <summary>
    /// Called before rows up to <paramref name="length"/> are written (a step's rows are written in parallel, in any
    /// order): a type that holds pending rows makes room for them in <paramref name="pending"/>, a buffer the cache
    /// keeps for it. <paramref name="rotation"/> is the model's rotary angles for the key side of a contiguous cache
    /// (null for values), for a type that keeps keys before RoPE (KIVI). Nothing by default.
    /// </summary>
    static virtual void Prepare(Span<byte> side, int length, int headDim, ref float[]? pending, RotaryTable? rotation) { }

    /// <summary>
    /// For a type whose rows do not stand alone, kept in a paged pool: binds the head's side header (which then lives
    /// with the sequence, not in the pool) to where its rows lie (<see cref="KvPaging"/>). Nothing by default.
    /// </summary>
    static virtual void Page(Span<byte> side, in KvPaging paging) { }

    /// <summary>
    /// Called, one caller at a time, after the rows of a step of positions [<paramref name="from"/>,
    /// <paramref name="end"/>) are written and before they are read: a type that quantizes groups of rows quantizes
    /// the groups the step's queries read quantized. Nothing by default.
    /// </summary>
    static virtual void Settle(Span<byte> rows, Span<byte> side, int from, int end, int headDim) { }

    /// <summary>
    /// Forgets rows [<paramref name="from"/>, <paramref name="to"/>) of a head (truncation, reset), zeroing what they
    /// stored; rows before <paramref name="from"/> read as before. By default their bytes are zeroed.
    /// </summary>
    static virtual void ClearRows(Span<byte> rows, Span<byte> side, int from, int to, int headDim)
    {
        int rowBytes = TSelf.RowBytes(headDim), sideBytes = TSelf.SideBytes(headDim);
        rows.Slice(from * rowBytes, (to - from) * rowBytes).Clear();
        side.Slice(TSelf.SideHeaderBytes(headDim) + from * sideBytes, (to - from) * sideBytes).Clear();
    }

    /// <summary>
    /// Asks for <paramref name="rows"/> consecutive rows (starting at <paramref name="row"/> and <paramref name="side"/>)
    /// to be brought into L2 before they are read; only a hint. By default the element plane: the side data is small
    /// and one line of it serves many rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void Prefetch(ref byte row, ref byte side, int rows, int headDim) =>
        CacheLines.Prefetch(ref row, (nint)rows * TSelf.RowBytes(headDim));

    /// <summary>
    /// Blocks of up to this many queries are attended with rows read in registers (<see cref="Load16"/> and the other
    /// loads); larger blocks read each tile once into floats (<see cref="Read"/>). 0 (the default): always from a tile.
    /// A type read in registers stores each element in a whole number of bytes: column c of a row lies
    /// <see cref="RowBytes"/>(c) bytes into it.
    /// </summary>
    static virtual int MaxQueriesInRegisters(int headDim) => 0;

    /// <summary>
    /// True when the loads return each element scaled down (F16: x 2^-112) and the other factor of every product must
    /// be <see cref="ScaleUp"/>-ed to match.
    /// </summary>
    static virtual bool ReadsScaledDown => false;

    /// <summary>x times the factor that makes x x (a loaded element) the true product (x itself unless <see cref="ReadsScaledDown"/>).</summary>
    static virtual float ScaleUp(float x) => x;

    /// <summary>Elements i..i+7 of the row at <paramref name="row"/> in <paramref name="lower"/>, i+8..i+15 in <paramref name="upper"/>.</summary>
    static virtual void Load16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> lower, out Vector256<float> upper) =>
        throw NotInRegisters();

    /// <summary>Elements i..i+7 of the row at <paramref name="row"/>.</summary>
    static virtual Vector256<float> Load8(ref byte row, nuint i, scoped in KvPlanes planes) => throw NotInRegisters();

    /// <summary>Element i of the row at <paramref name="row"/>.</summary>
    static virtual float Load1(ref byte row, nint i, scoped in KvPlanes planes) => throw NotInRegisters();

    /// <summary>
    /// Elements i..i+15 for sums whose accumulators can sit in any lane order (value sums), in the lanes
    /// <see cref="SwapInnerHalves"/> moves the accumulators into; by default as <see cref="Load16"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void LoadValues16(ref byte row, nuint i, scoped in KvPlanes planes, out Vector256<float> first, out Vector256<float> second) =>
        TSelf.Load16(ref row, i, planes, out first, out second);

    /// <summary>Accumulators of 16 columns (x = 0..7, y = 8..15) into or out of <see cref="LoadValues16"/>'s lanes; by default nothing moves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual void SwapInnerHalves(ref Vector256<float> x, ref Vector256<float> y) { }

    private static NotSupportedException NotInRegisters() =>
        new($"KV elements of {TSelf.Name} are read from a tile of floats, not in registers (MaxQueriesInRegisters is 0)");
}
