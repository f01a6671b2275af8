using KvSharp.Attention;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>
/// The keys and values of one sequence, per layer and per KV head: layout [layer][kv_head][position][head_dim],
/// so one head's keys for consecutive positions are contiguous (what the attention kernel streams through).
/// Positions [0, <see cref="Length"/>) are valid. The caller owns the cache: keep it across calls to continue
/// a sequence, <see cref="Truncate"/> to rewind, <see cref="Reset"/> to start a new one.
/// </summary>
public sealed class KvCache : IKvStore
{
    // Exactly one of the three is set, by ElementType (Q8_0: the integers, plus one scale per group in _q8Scales).
    private readonly KvArrays<float>? _f32;
    private readonly KvArrays<Half>? _f16;
    private readonly KvArrays<sbyte>? _q8;
    private readonly KvArrays<float>? _q8Scales;

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
    /// <summary>Bytes per cached token: 2 x layers x kv_heads x head_dim x bytes per element (Q8_0: 1 + 4 / group).</summary>
    public long BytesPerToken => Config.KvBytesPerToken(ElementType);
    /// <summary>Bytes this cache has actually allocated.</summary>
    public long AllocatedBytes => BytesPerToken * Capacity;
    /// <summary>Bytes holding valid data.</summary>
    public long UsedBytes => BytesPerToken * Length;

    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementType elementType = KvElementType.F32)
    {
        if (mode == KvCacheMode.None)
            throw new ArgumentException("KvCacheMode.None keeps no cache; a recomputing session uses a scratch cache per step", nameof(mode));
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        if (!Enum.IsDefined(elementType)) throw new ArgumentOutOfRangeException(nameof(elementType), elementType, "unknown KV element type");
        Config = config;
        Mode = mode;
        ElementType = elementType;
        MaxLength = maxLength;
        Capacity = mode == KvCacheMode.Static ? maxLength : Math.Min(maxLength, 64);
        if (elementType == KvElementType.Q8_0)
        {
            _q8 = new KvArrays<sbyte>(config, config.HeadDim, Capacity);
            _q8Scales = new KvArrays<float>(config, config.HeadDim / ScaleGroup, Capacity);
        }
        else if (elementType == KvElementType.F16) _f16 = new KvArrays<Half>(config, config.HeadDim, Capacity);
        else _f32 = new KvArrays<float>(config, config.HeadDim, Capacity);
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
        _q8?.Grow(Capacity, newCapacity, Length);
        _q8Scales?.Grow(Capacity, newCapacity, Length);
        Capacity = newCapacity;
    }

    /// <summary>One head's keys for positions [0, Capacity) of an F32 cache: row p is the key at position p.</summary>
    public Span<float> Keys(int layer, int kvHead) => F32.Rows(layer, kvHead, false, Capacity);

    public Span<float> Values(int layer, int kvHead) => F32.Rows(layer, kvHead, true, Capacity);

    /// <summary>One head's keys for positions [0, Capacity) of an F16 cache.</summary>
    public Span<Half> HalfKeys(int layer, int kvHead) => F16.Rows(layer, kvHead, false, Capacity);

    public Span<Half> HalfValues(int layer, int kvHead) => F16.Rows(layer, kvHead, true, Capacity);

    /// <summary>One head's key integers of a Q8_0 cache for positions [0, Capacity); scales in <see cref="Q8KeyScales"/>.</summary>
    public Span<sbyte> Q8Keys(int layer, int kvHead) => Q8.Rows(layer, kvHead, false, Capacity);

    public Span<sbyte> Q8Values(int layer, int kvHead) => Q8.Rows(layer, kvHead, true, Capacity);

    /// <summary>One scale per <see cref="ScaleGroup"/> key elements: position p's at p x head_dim / group.</summary>
    public Span<float> Q8KeyScales(int layer, int kvHead) => Q8Scales.Rows(layer, kvHead, false, Capacity);

    public Span<float> Q8ValueScales(int layer, int kvHead) => Q8Scales.Rows(layer, kvHead, true, Capacity);

    /// <summary>Elements per Q8_0 scale (<see cref="KvElementTypes.Q8Group"/>).</summary>
    public int ScaleGroup => KvElementTypes.Q8Group(HeadDim);

    private KvArrays<float> F32 => _f32 ?? throw WrongType("Keys/Values");
    private KvArrays<Half> F16 => _f16 ?? throw WrongType("HalfKeys/HalfValues");
    private KvArrays<sbyte> Q8 => _q8 ?? throw WrongType("Q8Keys/Q8Values");
    private KvArrays<float> Q8Scales => _q8Scales ?? throw WrongType("Q8KeyScales/Q8ValueScales");

    private InvalidOperationException WrongType(string accessors)
    {
        string right = ElementType switch { KvElementType.F32 => "Keys/Values", KvElementType.F16 => "HalfKeys/HalfValues", _ => "Q8Keys/Q8Values" };
        return new InvalidOperationException($"this cache stores {ElementType}; use {right}, not {accessors}");
    }

    void IKvStore.Reserve(int length) => EnsureCapacity(length);

    void IKvStore.Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (_q8 != null)
        {
            int hd = HeadDim, group = ScaleGroup;
            for (int h = 0; h < KvHeadCount; h++)
            {
                KvQ8.Quantize(keys.Slice(h * hd, hd), Q8Keys(layer, h).Slice(position * hd, hd),
                    Q8KeyScales(layer, h).Slice(position * hd / group, hd / group), group);
                KvQ8.Quantize(values.Slice(h * hd, hd), Q8Values(layer, h).Slice(position * hd, hd),
                    Q8ValueScales(layer, h).Slice(position * hd / group, hd / group), group);
            }
        }
        else if (_f16 != null) _f16.Write(layer, position, keys, values, Capacity);
        else F32.Write(layer, position, keys, values, Capacity);
    }

    void IKvStore.Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        if (_q8 != null)
            CausalAttention.Attend<ContiguousKvRows<sbyte>, sbyte>(block, new ContiguousKvRows<sbyte>(Q8Keys(layer, kvHead),
                Q8Values(layer, kvHead), Q8KeyScales(layer, kvHead), Q8ValueScales(layer, kvHead), HeadDim, ScaleGroup), scale, scratch);
        else if (_f16 != null)
            CausalAttention.Attend<ContiguousKvRows<Half>, Half>(block,
                new ContiguousKvRows<Half>(HalfKeys(layer, kvHead), HalfValues(layer, kvHead), HeadDim), scale, scratch);
        else
            CausalAttention.Attend(block, new ContiguousKvRows<float>(Keys(layer, kvHead), Values(layer, kvHead), HeadDim), scale, scratch);
    }

    void IKvStore.Prefetch(int layer, int kvHead, int end)
    {
        int positions = Math.Min(end, KvPrefetch.Positions);
        if (_q8 != null) _q8.Prefetch(layer, kvHead, positions, Capacity);
        else if (_f16 != null) _f16.Prefetch(layer, kvHead, positions, Capacity);
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
        _q8?.Clear(position, Length, Capacity);
        _q8Scales?.Clear(position, Length, Capacity);
    }

    /// <summary>
    /// Per layer one array of keys and one of values, [kv_head][position][width] at a capacity: width is head_dim, or
    /// for a Q8_0 cache's scales head_dim / group.
    /// </summary>
    private sealed class KvArrays<T>(ModelConfig config, int width, int capacity) where T : unmanaged
    {
        private readonly T[][] _keys = Allocate(config, width, capacity);
        private readonly T[][] _values = Allocate(config, width, capacity);

        private static T[][] Allocate(ModelConfig config, int width, int capacity)
        {
            var layers = new T[config.LayerCount][];
            for (int l = 0; l < layers.Length; l++) layers[l] = new T[(long)config.KvHeadCount * capacity * width];
            return layers;
        }

        public Span<T> Rows(int layer, int kvHead, bool value, int capacity) =>
            (value ? _values : _keys)[layer].AsSpan(kvHead * capacity * width, capacity * width);

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
            KvPrefetch.Rows(Rows(layer, kvHead, false, capacity), positions * width);
            KvPrefetch.Rows(Rows(layer, kvHead, true, capacity), positions * width);
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
            int hd = width;
            var grown = new T[(long)config.KvHeadCount * newCapacity * hd];
            for (int h = 0; h < config.KvHeadCount; h++)
                Array.Copy(old, (long)h * oldCapacity * hd, grown, (long)h * newCapacity * hd, used * hd);
            return grown;
        }

        /// <summary>Zeroes rows [from, to) of every layer and head.</summary>
        public void Clear(int from, int to, int capacity)
        {
            int hd = width;
            for (int l = 0; l < _keys.Length; l++)
                for (int h = 0; h < config.KvHeadCount; h++)
                {
                    Rows(l, h, false, capacity)[(from * hd)..(to * hd)].Clear();
                    Rows(l, h, true, capacity)[(from * hd)..(to * hd)].Clear();
                }
        }
    }
}
