using System.Buffers.Binary;
using System.IO.Hashing;

namespace KvSharp.Persistence;

/// <summary>
/// The framing of a session file after its header: each section is a 4-byte tag, its payload length (u64, little
/// endian), the payload, and the XxHash64 of the payload (u64), so a truncated or corrupted file fails in the section
/// that is damaged, with that section's name. Sections are read in a fixed order.
/// </summary>
internal static class ChecksummedSections
{
    /// <summary>Writes a file's header: its 8-byte magic and its format version (u32).</summary>
    public static void WriteHeader(Stream stream, ReadOnlySpan<byte> magic, uint version)
    {
        Span<byte> head = stackalloc byte[12];
        magic.CopyTo(head);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], version);
        stream.Write(head);
    }

    /// <summary>Checks a file's header (<see cref="WriteHeader"/>); <paramref name="kind"/> names the file in errors ("session", "prefix").</summary>
    public static void ReadHeader(Stream stream, ReadOnlySpan<byte> magic, uint version, string kind) => ReadHeader(stream, magic, version, version, kind);

    /// <summary>Checks a file's header, of any version from <paramref name="oldest"/> to <paramref name="version"/>, and returns its version.</summary>
    public static uint ReadHeader(Stream stream, ReadOnlySpan<byte> magic, uint oldest, uint version, string kind)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> head = stackalloc byte[12];
        int got = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (got < magic.Length || !head[..magic.Length].SequenceEqual(magic))
            throw new SessionFileException($"not a KvSharp {kind} file: it does not start with the magic \"{System.Text.Encoding.ASCII.GetString(magic).TrimEnd()}\"");
        if (got < head.Length) throw new SessionFileException($"{kind} file is truncated: it ends inside its header");
        uint found = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
        if (found < oldest || found > version)
            throw new SessionFileException($"{kind} file version {found} is not supported: this build reads " + (oldest == version ? $"version {version}" : $"versions {oldest} to {version}"));
        return found;
    }

    /// <summary>Writes a whole section.</summary>
    public static void Write(Stream stream, string tag, ReadOnlySpan<byte> payload)
    {
        var writer = Begin(stream, tag, payload.Length);
        writer.Append(payload);
        writer.End();
    }

    /// <summary>Starts a section of <paramref name="length"/> bytes written piece by piece (the KV rows, which are not copied first).</summary>
    public static SectionWriter Begin(Stream stream, string tag, long length)
    {
        Span<byte> head = stackalloc byte[12];
        TagBytes(tag, head[..4]);
        BinaryPrimitives.WriteInt64LittleEndian(head[4..], length);
        stream.Write(head);
        return new SectionWriter(stream, tag, length);
    }

    /// <summary>Reads a whole section of at most <paramref name="maxLength"/> bytes and checks its checksum.</summary>
    public static byte[] Read(Stream stream, string tag, string name, long maxLength)
    {
        var reader = Open(stream, tag, name, maxLength);
        var payload = new byte[reader.Length];
        reader.Read(payload);
        reader.End();
        return payload;
    }

    /// <summary>Starts reading a section: checks its tag and that its length is at most <paramref name="maxLength"/>.</summary>
    public static SectionReader Open(Stream stream, string tag, string name, long maxLength)
    {
        Span<byte> head = stackalloc byte[12];
        ReadExactly(stream, head, name, "its header");
        Span<byte> expected = stackalloc byte[4];
        TagBytes(tag, expected);
        if (!head[..4].SequenceEqual(expected))
            throw new SessionFileException($"session file: expected section '{tag}' ({name}), found '{Printable(head[..4])}': the file is corrupted or not a session file");
        long length = BinaryPrimitives.ReadInt64LittleEndian(head[4..]);
        if (length < 0 || length > maxLength)
            throw new SessionFileException($"session file: section '{tag}' ({name}) claims {length} bytes, expected at most {maxLength}: the file is corrupted");
        return new SectionReader(stream, tag, name, length);
    }

    internal static void ReadExactly(Stream stream, Span<byte> buffer, string name, string what)
    {
        int got = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (got < buffer.Length)
            throw new SessionFileException($"session file is truncated: it ends {buffer.Length - got} bytes short in {what} of section {name}");
    }

    private static void TagBytes(string tag, Span<byte> bytes)
    {
        for (int i = 0; i < 4; i++) bytes[i] = (byte)tag[i];
    }

    private static string Printable(ReadOnlySpan<byte> bytes) =>
        string.Concat(bytes.ToArray().Select(b => b is >= 32 and < 127 ? ((char)b).ToString() : $"\\x{b:x2}"));
}

internal sealed class SectionWriter(Stream stream, string tag, long length)
{
    private readonly XxHash64 _hash = new();
    private long _written;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        _written += bytes.Length;
        if (_written > length) throw new InvalidOperationException($"section '{tag}' was declared {length} bytes but more were written");
        _hash.Append(bytes);
        stream.Write(bytes);
    }

    public void End()
    {
        if (_written != length) throw new InvalidOperationException($"section '{tag}' was declared {length} bytes but {_written} were written");
        Span<byte> sum = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(sum, _hash.GetCurrentHashAsUInt64());
        stream.Write(sum);
    }
}

internal sealed class SectionReader(Stream stream, string tag, string name, long length)
{
    private readonly XxHash64 _hash = new();
    private long _read;

    public long Length => length;

    public void Read(Span<byte> buffer)
    {
        if (_read + buffer.Length > length) throw new InvalidOperationException($"reading past the end of section '{tag}'");
        ChecksummedSections.ReadExactly(stream, buffer, $"'{tag}' ({name})", "the payload");
        _hash.Append(buffer);
        _read += buffer.Length;
    }

    /// <summary>Checks that the whole payload was read and that it matches its checksum.</summary>
    public void End()
    {
        if (_read != length) throw new SessionFileException($"session file: section '{tag}' ({name}) holds {length} bytes but {_read} were expected: the file is corrupted");
        Span<byte> sum = stackalloc byte[8];
        ChecksummedSections.ReadExactly(stream, sum, $"'{tag}' ({name})", "the checksum");
        if (BinaryPrimitives.ReadUInt64LittleEndian(sum) != _hash.GetCurrentHashAsUInt64())
            throw new SessionFileException($"session file: section '{tag}' ({name}) fails its checksum: the file is corrupted");
    }
}
