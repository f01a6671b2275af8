using System.Buffers.Binary;
using System.IO.Hashing;

namespace KvSharp.Cache.Tiers;

/// <summary>
/// One prefix block as a tier stores it. The key names the block's whole prefix: the KV layout, the chain's root
/// (model identity and tenant salt, <see cref="Paged.PrefixHasher.Seed"/>) and the block's chained hash, so nothing is
/// shared across models, KV types or tenants. The value is a header (magic, version, layout, root, parent hash, hash,
/// the block's token ids), the block's bytes (<see cref="Paged.KvBlockPool.CopyBlockOut"/>) and an XxHash64 of all
/// that. A value that fails its checksum, or whose root, parent, hash or tokens are not the ones looked up, is
/// refused: the engine recomputes the block, never adopts a wrong one.
/// Version 2 blocks of a pool that stores each row once (<see cref="Paged.KvBlockPool.ValuesAreKeys"/>: latent
/// attention) hold that row once; version 1 held it twice, as key and as value. A pool that stores values apart still
/// writes version 1, byte for byte as before; a version 1 block offered to a pool that keeps the row once is refused
/// naming its version.
/// </summary>
public static class KvTierBlock
{
    private const uint Magic = 0x4B42564B; // "KVBK"
    private const uint Version = 2;
    // What a pool that stores keys and values apart writes and reads: its blocks' bytes did not change in version 2.
    private const uint OldestApartVersion = 1;
    private const int HeaderBytes = 4 + 4 + 8 + 8 + 8 + 8 + 4 + 8;

    /// <summary>The identity of one block of one chain, and the tokens it must hold.</summary>
    public readonly record struct Identity(ulong Layout, ulong Root, ulong ParentHash, ulong Hash);

    public static string Key(Identity id) => $"kvsharp:{id.Layout:x16}:{id.Root:x16}:{id.Hash:x16}";

    public static int EncodedLength(int tokens, int blockBytes) => HeaderBytes + tokens * 4 + blockBytes + 8;

    /// <summary>
    /// Writes the value for a block into <paramref name="destination"/> (<see cref="EncodedLength"/> bytes); <paramref name="block"/>
    /// is its bytes, of a pool that stores each row once where <paramref name="valuesAreKeys"/>.
    /// </summary>
    public static void Encode(Identity id, ReadOnlySpan<int> tokens, ReadOnlySpan<byte> block, Span<byte> destination, bool valuesAreKeys = false)
    {
        var d = destination;
        BinaryPrimitives.WriteUInt32LittleEndian(d, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], valuesAreKeys ? Version : OldestApartVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(d[8..], id.Layout);
        BinaryPrimitives.WriteUInt64LittleEndian(d[16..], id.Root);
        BinaryPrimitives.WriteUInt64LittleEndian(d[24..], id.ParentHash);
        BinaryPrimitives.WriteUInt64LittleEndian(d[32..], id.Hash);
        BinaryPrimitives.WriteInt32LittleEndian(d[40..], tokens.Length);
        BinaryPrimitives.WriteInt64LittleEndian(d[44..], block.Length);
        int at = HeaderBytes;
        foreach (int t in tokens)
        {
            BinaryPrimitives.WriteInt32LittleEndian(d[at..], t);
            at += 4;
        }
        block.CopyTo(d[at..]);
        at += block.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(d[at..], XxHash64.HashToUInt64(d[..at]));
    }

    /// <summary>The value for block <paramref name="block"/> of <paramref name="pool"/>, into <paramref name="destination"/> (<see cref="EncodedLength"/> bytes).</summary>
    public static void Encode(Identity id, ReadOnlySpan<int> tokens, Paged.KvBlockPool pool, int block, Span<byte> destination)
    {
        int blockBytes = checked((int)pool.BytesPerBlock);
        var bytes = destination.Slice(destination.Length - 8 - blockBytes, blockBytes);
        pool.CopyBlockOut(block, bytes);
        Encode(id, tokens, bytes, destination, pool.ValuesAreKeys);
    }

    /// <summary>
    /// The block's bytes inside <paramref name="value"/> if it is intact and is exactly the block looked up (same
    /// identity, same tokens, <paramref name="blockBytes"/> long); otherwise false with the reason.
    /// <paramref name="valuesAreKeys"/>: the pool stores each row once, so a version 1 block (the row twice) is refused.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> value, Identity id, ReadOnlySpan<int> tokens, int blockBytes, out ReadOnlySpan<byte> block, out string? problem,
        bool valuesAreKeys = false)
    {
        block = default;
        // The version first: an older block of another layout is also of another length, and that would hide why.
        if (value.Length >= 8 && BinaryPrimitives.ReadUInt32LittleEndian(value) == Magic)
        {
            uint version = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]), oldest = valuesAreKeys ? Version : OldestApartVersion;
            if (version < oldest || version > Version)
                return Fail(valuesAreKeys && version >= OldestApartVersion && version < Version
                    ? $"block format version {version} holds a latent layer's row twice (as key and as value); this pool keeps it once (version {Version}): recompute it"
                    : $"block format version {version}; this reads versions {oldest} to {Version}", out problem);
        }
        if (value.Length != EncodedLength(tokens.Length, blockBytes))
            return Fail($"{value.Length} bytes, expected {EncodedLength(tokens.Length, blockBytes)}", out problem);
        int end = value.Length - 8;
        if (BinaryPrimitives.ReadUInt64LittleEndian(value[end..]) != XxHash64.HashToUInt64(value[..end]))
            return Fail("checksum mismatch", out problem);
        if (BinaryPrimitives.ReadUInt32LittleEndian(value) != Magic)
            return Fail("not a KvSharp block", out problem);
        var stored = new Identity(BinaryPrimitives.ReadUInt64LittleEndian(value[8..]), BinaryPrimitives.ReadUInt64LittleEndian(value[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(value[24..]), BinaryPrimitives.ReadUInt64LittleEndian(value[32..]));
        if (stored != id) return Fail($"identity {stored} is not the one looked up ({id})", out problem);
        if (BinaryPrimitives.ReadInt32LittleEndian(value[40..]) != tokens.Length || BinaryPrimitives.ReadInt64LittleEndian(value[44..]) != blockBytes)
            return Fail("another block size", out problem);
        for (int i = 0; i < tokens.Length; i++)
            if (BinaryPrimitives.ReadInt32LittleEndian(value[(HeaderBytes + i * 4)..]) != tokens[i])
                return Fail("other tokens (a hash collision)", out problem);
        block = value.Slice(HeaderBytes + tokens.Length * 4, blockBytes);
        problem = null;
        return true;
    }

    private static bool Fail(string reason, out string? problem)
    {
        problem = reason;
        return false;
    }
}
