using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// What a loader does to each matmul weight: where the type has interleaved kernels (<see cref="InterleavedRows"/>)
/// it copies the matrix into that layout, then lets the OS drop the mapped original from resident memory so the model
/// is not held twice (only rows past the last group of eight are still read there, and they fault back in). A matrix
/// that is also looked up row by row (a tied token embedding) keeps its pages. If loading fails, <see cref="Dispose"/>
/// frees every copy made so far; once the weights are built they own the copies (<see cref="Keep"/>).
/// </summary>
internal sealed unsafe class InterleavedCopies(Action<nint, long> adviseNotNeeded) : IDisposable
{
    private readonly List<InterleavedRows> _created = [];

    public WeightMatrix Interleave(WeightMatrix m, bool lookedUp = false)
    {
        if (!InterleavedRows.Supports(m.Type) || m.Rows < InterleavedRows.RowsPerGroup) return m;
        var rows = InterleavedRows.Create(m);
        _created.Add(rows);
        if (!lookedUp) adviseNotNeeded((nint)m.Data, rows.Bytes);
        return m with { Interleaved = rows };
    }

    /// <summary>The weights now own the copies: <see cref="Dispose"/> no longer frees them.</summary>
    public void Keep() => _created.Clear();

    public void Dispose()
    {
        foreach (var rows in _created) rows.Dispose();
        _created.Clear();
    }
}
