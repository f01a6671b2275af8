using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Models;

namespace KvSharp.Evaluation;

/// <summary>
/// One cache configuration an evaluation measures against the exact cache (F32, every position kept): the KV element
/// type and the cache policy (<see cref="KvCachePolicy"/>: full, a sliding window, sinks and a window), applied where
/// the setup creates its cache; the evaluator runs every setup the same way.
/// </summary>
public sealed record EvalSetup(KvElementType ElementType, KvCachePolicy? CachePolicy = null)
{
    /// <summary>The policy that keeps every position, as reports name it.</summary>
    public const string FullPolicy = "full";

    /// <summary>The cache policy's name in reports.</summary>
    public string Policy => (CachePolicy ?? KvCachePolicy.Full).ToString();

    /// <summary>How keys are stored (keys and values share one type until caches store them separately).</summary>
    public KvElementType KeyType => ElementType;

    /// <summary>How values are stored.</summary>
    public KvElementType ValueType => ElementType;

    /// <summary>The cache one window of the text runs in (emptied between windows); <paramref name="rope"/> moves a policy's sinks.</summary>
    internal KvCache CreateCache(ModelConfig config, int contextLength, RotaryEmbedding rope) =>
        new(config, KvCacheMode.Contiguous, contextLength, KvElementFormat.Of(ElementType), CachePolicy ?? KvCachePolicy.Full, rope);

    public override string ToString() => $"{Policy} {ElementType}";
}
