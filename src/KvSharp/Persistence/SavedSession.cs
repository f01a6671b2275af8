using KvSharp.Cache;

namespace KvSharp.Persistence;

/// <summary>
/// What a session file says besides its KV rows: the model and KV layout it was computed with, the session's context
/// and overflow policy, its token ids, and how many leading positions [0, <see cref="CachedLength"/>) hold keys and
/// values (the rest of <see cref="Tokens"/>, normally the last sampled token, is still to compute).
/// </summary>
public sealed record SavedSession
{
    public required ModelFingerprint Model { get; init; }
    public required KvLayout Kv { get; init; }
    public required int ContextLength { get; init; }
    public required ContextOverflow ContextOverflow { get; init; }
    public int? ContextShiftKeep { get; init; }
    public int? ContextShiftDiscard { get; init; }
    public required int[] Tokens { get; init; }
    public required int CachedLength { get; init; }
    /// <summary>
    /// Per layer, the oldest position whose rows the file holds (its rows are those of [first, <see cref="CachedLength"/>)):
    /// 0, or where the ring of a local layer (<c>KvCache.LocalLayerRows</c>) started. Empty: 0 for every layer.
    /// </summary>
    public int[] FirstPositions { get; init; } = [];

    /// <summary>The session file format version it was read from (<see cref="SessionFile"/>); the one it will be written as for a live session.</summary>
    public uint FormatVersion { get; init; } = SessionFile.Version;

    /// <summary>The oldest position whose rows the file holds for <paramref name="layer"/>.</summary>
    public int FirstPosition(int layer) => FirstPositions.Length == 0 ? 0 : FirstPositions[layer];
}

/// <summary>
/// How a cache stores one position of one layer and KV head: the key and value element types (by name), the bytes
/// of a row and of its side data, and whether the values are the keys, stored once (<see cref="KvCache.ValuesAreKeys"/>:
/// a latent model's cache). Two caches whose layouts are equal can exchange rows byte for byte.
/// </summary>
public sealed record KvLayout(string KeyType, string ValueType, int Layers, int KvHeads, int HeadDim,
    int KeyRowBytes, int KeySideBytes, int ValueRowBytes, int ValueSideBytes, bool ValuesAreKeys = false)
{
    /// <summary>A cache's layout (the one place that reads its element types).</summary>
    public static KvLayout Of(KvCache cache)
    {
        int headDim = cache.HeadDim;
        KvElementFormat keys = cache.Format.Keys, values = cache.Format.Values;
        return new KvLayout(cache.Format.KeyName, cache.Format.ValueName, cache.LayerCount, cache.KvHeadCount, headDim,
            keys.RowBytes(headDim), keys.SideBytes(headDim), values.RowBytes(headDim), values.SideBytes(headDim), cache.ValuesAreKeys);
    }

    public long BytesPerPosition => Layers * BytesPerLayerPosition;

    /// <summary>Bytes of one position of one layer, every KV head's key and value rows and side data (the key's alone where <see cref="ValuesAreKeys"/>).</summary>
    public long BytesPerLayerPosition => (long)KvHeads * (KeyRowBytes + KeySideBytes + (ValuesAreKeys ? 0 : ValueRowBytes + ValueSideBytes));

    public string TypeName => KeyType == ValueType ? KeyType : $"K {KeyType} / V {ValueType}";
}
