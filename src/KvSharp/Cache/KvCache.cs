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
    private float[][] _keys;
    private float[][] _values;

    public ModelConfig Config { get; }
    public KvCacheMode Mode { get; }
    /// <summary>The most positions this cache will ever hold (the session's context length).</summary>
    public int MaxLength { get; }
    /// <summary>Positions currently allocated per layer and head.</summary>
    public int Capacity { get; private set; }
    /// <summary>Positions holding valid keys and values.</summary>
    public int Length { get; private set; }

    public int LayerCount => Config.LayerCount;
    public int KvHeadCount => Config.KvHeadCount;
    public int HeadDim => Config.HeadDim;
    public const int BytesPerElement = sizeof(float);

    /// <summary>Bytes per cached token: 2 x layers x kv_heads x head_dim x 4.</summary>
    public long BytesPerToken => Config.KvBytesPerToken(BytesPerElement);
    /// <summary>Bytes this cache has actually allocated.</summary>
    public long AllocatedBytes => BytesPerToken * Capacity;
    /// <summary>Bytes holding valid data.</summary>
    public long UsedBytes => BytesPerToken * Length;

    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength)
    {
        if (mode == KvCacheMode.None)
            throw new ArgumentException("KvCacheMode.None keeps no cache; a recomputing session uses a scratch cache per step", nameof(mode));
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        Config = config;
        Mode = mode;
        MaxLength = maxLength;
        Capacity = mode == KvCacheMode.Static ? maxLength : Math.Min(maxLength, 64);
        _keys = new float[config.LayerCount][];
        _values = new float[config.LayerCount][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _keys[l] = new float[(long)config.KvHeadCount * Capacity * config.HeadDim];
            _values[l] = new float[_keys[l].Length];
        }
    }

    /// <summary>Makes room for <paramref name="length"/> positions (contiguous mode grows by doubling; static never grows).</summary>
    public void EnsureCapacity(int length)
    {
        if (length > MaxLength)
            throw new InvalidOperationException($"sequence of {length} tokens exceeds the cache's context length {MaxLength}");
        if (length <= Capacity) return;
        int newCapacity = Math.Min(MaxLength, Math.Max(length, Capacity * 2));
        for (int l = 0; l < LayerCount; l++)
        {
            _keys[l] = Grow(_keys[l], newCapacity);
            _values[l] = Grow(_values[l], newCapacity);
        }
        Capacity = newCapacity;
    }

    private float[] Grow(float[] old, int newCapacity)
    {
        var grown = new float[(long)KvHeadCount * newCapacity * HeadDim];
        int oldRun = Capacity * HeadDim, newRun = newCapacity * HeadDim, used = Length * HeadDim;
        for (int h = 0; h < KvHeadCount; h++)
            Array.Copy(old, (long)h * oldRun, grown, (long)h * newRun, used);
        return grown;
    }

    /// <summary>One head's keys for positions [0, Capacity): row p is the key at position p.</summary>
    public Span<float> Keys(int layer, int kvHead) => _keys[layer].AsSpan(kvHead * Capacity * HeadDim, Capacity * HeadDim);

    public Span<float> Values(int layer, int kvHead) => _values[layer].AsSpan(kvHead * Capacity * HeadDim, Capacity * HeadDim);

    void IKvStore.Reserve(int length) => EnsureCapacity(length);

    void IKvStore.Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        for (int h = 0; h < KvHeadCount; h++)
        {
            keys.Slice(h * HeadDim, HeadDim).CopyTo(Keys(layer, h).Slice(position * HeadDim, HeadDim));
            values.Slice(h * HeadDim, HeadDim).CopyTo(Values(layer, h).Slice(position * HeadDim, HeadDim));
        }
    }

    void IKvStore.Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        var rows = new ContiguousKvRows(Keys(layer, kvHead), Values(layer, kvHead), HeadDim);
        CausalAttention.Attend(block, rows, scale, scratch);
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
        for (int l = 0; l < LayerCount; l++)
            for (int h = 0; h < KvHeadCount; h++)
            {
                Keys(l, h)[(position * HeadDim)..(Length * HeadDim)].Clear();
                Values(l, h)[(position * HeadDim)..(Length * HeadDim)].Clear();
            }
    }
}
