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
}

/// <summary>
/// How a cache stores one position of one layer and KV head: the key and value element types (by name) and the bytes
/// of a row and of its side data. Two caches whose layouts are equal can exchange rows byte for byte.
/// </summary>
public sealed record KvLayout(string KeyType, string ValueType, int Layers, int KvHeads, int HeadDim,
    int KeyRowBytes, int KeySideBytes, int ValueRowBytes, int ValueSideBytes)
{
    /// <summary>A cache's layout (the one place that reads its element types).</summary>
    public static KvLayout Of(KvCache cache)
    {
        int capacity = cache.Capacity;
        return new KvLayout(cache.Format.KeyName, cache.Format.ValueName, cache.LayerCount, cache.KvHeadCount, cache.HeadDim,
            cache.KeyRows(0, 0).Length / capacity, cache.KeySide(0, 0).Length / capacity,
            cache.ValueRows(0, 0).Length / capacity, cache.ValueSide(0, 0).Length / capacity);
    }

    public long BytesPerPosition => (long)Layers * KvHeads * (KeyRowBytes + KeySideBytes + ValueRowBytes + ValueSideBytes);

    public string TypeName => KeyType == ValueType ? KeyType : $"K {KeyType} / V {ValueType}";
}
