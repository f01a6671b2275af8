using System.Buffers.Binary;

namespace KvSharp.Persistence;

/// <summary>
/// A conversation's cached prefix as the server saves it (<c>LlmEngine.SavePrefix</c>): the magic "KVPREFIX", a
/// version (u32), then two checksummed sections (<see cref="ChecksummedSections"/>): PTOK, the token ids of the saved
/// blocks; PBLK, the blocks, each a length (i32) and a <see cref="Cache.Tiers.KvTierBlock"/> value, which carries the
/// model, KV layout and tenant it was computed for and a checksum of its own.
/// </summary>
public static class PrefixFile
{
    public const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "KVPREFIX"u8;

    public static void Write(Stream stream, ReadOnlySpan<int> tokens, IReadOnlyList<byte[]> blocks)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(blocks);
        ChecksummedSections.WriteHeader(stream, Magic, Version);
        var ids = new byte[4 + tokens.Length * 4];
        BinaryPrimitives.WriteInt32LittleEndian(ids, tokens.Length);
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(ids.AsSpan(4 + i * 4), tokens[i]);
        ChecksummedSections.Write(stream, "PTOK", ids);
        var section = ChecksummedSections.Begin(stream, "PBLK", 4 + blocks.Sum(b => 4L + b.Length));
        Span<byte> number = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(number, blocks.Count);
        section.Append(number);
        foreach (var block in blocks)
        {
            BinaryPrimitives.WriteInt32LittleEndian(number, block.Length);
            section.Append(number);
            section.Append(block);
        }
        section.End();
    }

    /// <summary>Reads a prefix file whole; a file of another version, truncated or corrupted is a <see cref="SessionFileException"/> that says which.</summary>
    public static (int[] Tokens, List<byte[]> Blocks) Read(Stream stream, long maxBytes = 1L << 34)
    {
        ChecksummedSections.ReadHeader(stream, Magic, Version, "prefix");
        var ids = ChecksummedSections.Read(stream, "PTOK", "token ids", int.MaxValue);
        int count = ids.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(ids) : -1;
        if (count < 0 || ids.Length != 4 + 4L * count) throw new SessionFileException("prefix file: section 'PTOK' (token ids) does not hold its count of ids: the file is corrupted");
        var tokens = new int[count];
        for (int i = 0; i < count; i++) tokens[i] = BinaryPrimitives.ReadInt32LittleEndian(ids.AsSpan(4 + i * 4));
        var section = ChecksummedSections.Open(stream, "PBLK", "blocks", maxBytes);
        Span<byte> number = stackalloc byte[4];
        section.Read(number);
        int blockCount = BinaryPrimitives.ReadInt32LittleEndian(number);
        var blocks = new List<byte[]>();
        long left = section.Length - 4;
        for (int i = 0; i < blockCount; i++)
        {
            section.Read(number);
            int length = BinaryPrimitives.ReadInt32LittleEndian(number);
            left -= 4;
            if (length < 0 || length > left) throw new SessionFileException($"prefix file: block {i} claims {length} bytes, more than the section holds: the file is corrupted");
            var block = new byte[length];
            section.Read(block);
            left -= length;
            blocks.Add(block);
        }
        section.End();
        return (tokens, blocks);
    }
}
