using KvSharp.Attention;
using KvSharp.Models;

namespace KvSharp.Cache;

/// <summary>
/// The keys and values of one sequence, per layer and per KV head: layout [layer][kv_head][position][head_dim],
/// so one head's keys for consecutive positions are contiguous (what the attention kernel streams through).
/// Positions [0, <see cref="Length"/>) are valid. The caller owns the cache: keep it across calls to continue
/// a sequence, <see cref="Truncate"/> to rewind, <see cref="Reset"/> to start a new one.
/// </summary>
public sealed class KvCache : IKvStore
{
    // Exactly one of the two is set, by ElementType.
    private readonly KvArrays<float>? _f32;
    private readonly KvArrays<Half>? _f16;

    public ModelConfig Config { get; }
    public KvCacheMode Mode { get; }
    public KvElementType ElementType { get; }
    /// <summary>The most positions this cache will ever hold (the session's context length).</summary>
    public int MaxLength { get; }
    /// <summary>Positions currently allocated per layer and head.</summary>
    public int Capacity { get; private set; }
    /// <summary>Positions holding valid keys and values.</summary>
    public int Length { get; private set; }

    public int LayerCount => Config.LayerCount;
    public int KvHeadCount => Config.KvHeadCount;
    public int HeadDim => Config.HeadDim;
    public int BytesPerElement => ElementType.BytesPerElement();

    /// <summary>Bytes per cached token: 2 x layers x kv_heads x head_dim x bytes per element.</summary>
    public long BytesPerToken => Config.KvBytesPerToken(BytesPerElement);
    /// <summary>Bytes this cache has actually allocated.</summary>
    public long AllocatedBytes => BytesPerToken * Capacity;
    /// <summary>Bytes holding valid data.</summary>
    public long UsedBytes => BytesPerToken * Length;

    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementType elementType = KvElementType.F32)
    {
        if (mode == KvCacheMode.None)
            throw new ArgumentException("KvCacheMode.None keeps no cache; a recomputing session uses a scratch cache per step", nameof(mode));
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        _ = elementType.BytesPerElement(); // rejects an undefined type
        Config = config;
        Mode = mode;
        ElementType = elementType;
        MaxLength = maxLength;
        Capacity = mode == KvCacheMode.Static ? maxLength : Math.Min(maxLength, 64);
        if (elementType == KvElementType.F16) _f16 = new KvArrays<Half>(config, Capacity);
        else _f32 = new KvArrays<float>(config, Capacity);
    }

    /// <summary>Makes room for <paramref name="length"/> positions (contiguous mode grows by doubling; static never grows).</summary>
    public void EnsureCapacity(int length)
    {
        if (length > MaxLength)
            throw new InvalidOperationException($"sequence of {length} tokens exceeds the cache's context length {MaxLength}");
        if (length <= Capacity) return;
        int newCapacity = Math.Min(MaxLength, Math.Max(length, Capacity * 2));
        _f32?.Grow(Capacity, newCapacity, Length);
        _f16?.Grow(Capacity, newCapacity, Length);
        Capacity = newCapacity;
    }

    /// <summary>One head's keys for positions [0, Capacity) of an F32 cache: row p is the key at position p.</summary>
    public Span<float> Keys(int layer, int kvHead) => F32.Rows(layer, kvHead, false, Capacity);

    public Span<float> Values(int layer, int kvHead) => F32.Rows(layer, kvHead, true, Capacity);

    /// <summary>One head's keys for positions [0, Capacity) of an F16 cache.</summary>
    public Span<Half> HalfKeys(int layer, int kvHead) => F16.Rows(layer, kvHead, false, Capacity);

    public Span<Half> HalfValues(int layer, int kvHead) => F16.Rows(layer, kvHead, true, Capacity);

    private KvArrays<float> F32 => _f32 ?? throw new InvalidOperationException($"this cache stores {ElementType}; use HalfKeys/HalfValues");
    private KvArrays<Half> F16 => _f16 ?? throw new InvalidOperationException($"this cache stores {ElementType}; use Keys/Values");

    void IKvStore.Reserve(int length) => EnsureCapacity(length);

    void IKvStore.Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (_f16 != null) _f16.Write(layer, position, keys, values, Capacity);
        else F32.Write(layer, position, keys, values, Capacity);
    }

    void IKvStore.Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        if (_f16 != null)
            CausalAttention.Attend<ContiguousKvRows<Half>, Half>(block,
                new ContiguousKvRows<Half>(HalfKeys(layer, kvHead), HalfValues(layer, kvHead), HeadDim), scale, scratch);
        else
            CausalAttention.Attend(block, new ContiguousKvRows<float>(Keys(layer, kvHead), Values(layer, kvHead), HeadDim), scale, scratch);
    }

    void IKvStore.Prefetch(int layer, int kvHead, int end)
    {
        int positions = Math.Min(end, KvPrefetch.Positions);
        if (_f16 != null) _f16.Prefetch(layer, kvHead, positions, Capacity);
        else F32.Prefetch(layer, kvHead, positions, Capacity);
    }

    /// <summary>Declares positions [Length, newLength) written (by the forward pass, for every layer).</summary>
    public void Commit(int newLength)
    {
        if (newLength < Length || newLength > Capacity)
            throw new ArgumentOutOfRangeException(nameof(newLength), newLength, $"must be within [{Length}, {Capacity}]");
        Length = newLength;
    }

    /// <summary>Forgets positions from <paramref name="length"/> on, so the sequence can continue from there.</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"cannot truncate a cache of {Length} tokens to {length}");
        ClearFrom(length);
        Length = length;
    }

    /// <summary>Empties the cache for an unrelated request. The old keys and values are zeroed, not just hidden.</summary>
    public void Reset()
    {
        ClearFrom(0);
        Length = 0;
    }

    private void ClearFrom(int position)
    {
        _f32?.Clear(position, Length, Capacity);
        _f16?.Clear(position, Length, Capacity);
    }

    /// <summary>Per layer one array of keys and one of values, [kv_head][position][head_dim] at a capacity.</summary>
    private sealed class KvArrays<T>(ModelConfig config, int capacity) where T : unmanaged
    {
        private readonly T[][] _keys = Allocate(config, capacity);
        private readonly T[][] _values = Allocate(config, capacity);

        private static T[][] Allocate(ModelConfig config, int capacity)
        {
            var layers = new T[config.LayerCount][];
            for (int l = 0; l < layers.Length; l++) layers[l] = new T[(long)config.KvHeadCount * capacity * config.HeadDim];
            return layers;
        }

        public Span<T> Rows(int layer, int kvHead, bool value, int capacity) =>
            (value ? _values : _keys)[layer].AsSpan(kvHead * capacity * config.HeadDim, capacity * config.HeadDim);

        /// <summary>Stores one position's keys and values (kv_heads x head_dim each) for one layer.</summary>
        public void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int capacity)
        {
            int hd = config.HeadDim;
            for (int h = 0; h < config.KvHeadCount; h++)
            {
                KvElementTypes.Store(keys.Slice(h * hd, hd), Rows(layer, h, false, capacity).Slice(position * hd, hd));
                KvElementTypes.Store(values.Slice(h * hd, hd), Rows(layer, h, true, capacity).Slice(position * hd, hd));
            }
        }

        /// <summary>Asks for one head's first <paramref name="positions"/> key and value rows (<see cref="KvPrefetch"/>).</summary>
        public void Prefetch(int layer, int kvHead, int positions, int capacity)
        {
            KvPrefetch.Rows(Rows(layer, kvHead, false, capacity), positions * config.HeadDim);
            KvPrefetch.Rows(Rows(layer, kvHead, true, capacity), positions * config.HeadDim);
        }

        /// <summary>Moves to a larger capacity, keeping each head's first <paramref name="used"/> rows.</summary>
        public void Grow(int oldCapacity, int newCapacity, int used)
        {
            for (int l = 0; l < _keys.Length; l++)
            {
                _keys[l] = Grow(_keys[l], oldCapacity, newCapacity, used);
                _values[l] = Grow(_values[l], oldCapacity, newCapacity, used);
            }
        }

        private T[] Grow(T[] old, int oldCapacity, int newCapacity, int used)
        {
            int hd = config.HeadDim;
            var grown = new T[(long)config.KvHeadCount * newCapacity * hd];
            for (int h = 0; h < config.KvHeadCount; h++)
                Array.Copy(old, (long)h * oldCapacity * hd, grown, (long)h * newCapacity * hd, used * hd);
            return grown;
        }

        /// <summary>Zeroes rows [from, to) of every layer and head.</summary>
        public void Clear(int from, int to, int capacity)
        {
            int hd = config.HeadDim;
            for (int l = 0; l < _keys.Length; l++)
                for (int h = 0; h < config.KvHeadCount; h++)
                {
                    Rows(l, h, false, capacity)[(from * hd)..(to * hd)].Clear();
                    Rows(l, h, true, capacity)[(from * hd)..(to * hd)].Clear();
                }
        }
    }
}
