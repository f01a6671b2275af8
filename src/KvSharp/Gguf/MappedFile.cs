using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace KvSharp.Gguf;

/// <summary>A whole file mapped read-only into memory; model weights are used in place from here, never copied.</summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;

    public string Path { get; }
    public long Length { get; }

    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    /// <summary>Maps <paramref name="path"/>; files shorter than <paramref name="minimumLength"/> are rejected with a message naming it.</summary>
    public MappedFile(string path, long minimumLength, string formatName)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw ModelPath.NotAFile(path);
        if (info.Length < Math.Max(1, minimumLength))
            throw new GgufFormatException($"{path}: file is {info.Length} bytes, too small to be a {formatName} file (needs at least {minimumLength})");
        Path = path;
        Length = info.Length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _map.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Tells the OS that the pages wholly inside [start, start + bytes) will not be read soon, so they leave this
    /// process's resident memory (they stay in the page cache, and reading them again simply faults them back in).
    /// Used after a matrix was copied into another layout. Only on Linux; elsewhere, and on any error, nothing happens.
    /// </summary>
    public void AdviseNotNeeded(byte* start, long bytes)
    {
        if (!OperatingSystem.IsLinux() || start < Pointer || start + bytes > Pointer + Length) return;
        long page = Environment.SystemPageSize;
        long first = ((long)start + page - 1) & ~(page - 1), end = ((long)start + bytes) & ~(page - 1);
        if (end > first) _ = madvise((nint)first, (nuint)(end - first), MadviseDontNeed);
    }

    private const int MadviseDontNeed = 4;

    [DllImport("libc", SetLastError = false)]
    private static extern int madvise(nint address, nuint length, int advice);

    /// <summary>The first min(Length, 2 GiB) bytes, for parsing headers.</summary>
    public ReadOnlySpan<byte> Head => new(Pointer, (int)Math.Min(Length, int.MaxValue));

    public void Dispose()
    {
        if (_pointer == null) return;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
