using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Models;

namespace KvSharp.Evaluation;

/// <summary>
/// One cache configuration an evaluation measures against the exact cache (F32, every position kept): the KV element
/// types of keys and values and the cache policy (<see cref="KvCachePolicy"/>: full, a sliding window, sinks and a
/// window), applied where the setup creates its cache; the evaluator runs every setup the same way.
/// </summary>
public sealed record EvalSetup(KvElementType KeyType, KvElementType ValueType, KvCachePolicy? CachePolicy = null)
{
    /// <summary>Keys and values stored as the same type.</summary>
    public EvalSetup(KvElementType elementType, KvCachePolicy? cachePolicy = null) : this(elementType, elementType, cachePolicy) { }

    /// <summary>The policy that keeps every position, as reports name it.</summary>
    public const string FullPolicy = "full";

    /// <summary>The cache policy's name in reports.</summary>
    public string Policy => (CachePolicy ?? KvCachePolicy.Full).ToString();

    /// <summary>The keys' and values' types together.</summary>
    public KvElementFormat Format => KvElementFormat.Of(KeyType, ValueType);

    /// <summary>The cache one window of the text runs in (emptied between windows); <paramref name="rope"/> moves a policy's sinks.</summary>
    internal KvCache CreateCache(ModelConfig config, int contextLength, RotaryEmbedding rope) =>
        new(config, KvCacheMode.Contiguous, contextLength, Format, CachePolicy ?? KvCachePolicy.Full, rope);

    public override string ToString() => $"{Policy} {Format.Name}";
}
