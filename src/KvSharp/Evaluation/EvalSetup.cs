using KvSharp.Cache;
using KvSharp.Models;

namespace KvSharp.Evaluation;

/// <summary>
/// One cache configuration an evaluation measures against the exact cache (F32, every position kept): today the KV
/// element type, with every position kept (the "full" policy). A cache policy (sliding window, sinks, eviction) is one
/// more property here, applied where the setup creates its cache; the evaluator runs every setup the same way.
/// </summary>
public sealed record EvalSetup(KvElementType ElementType)
{
    /// <summary>The policy that keeps every position, as reports name it.</summary>
    public const string FullPolicy = "full";

    /// <summary>The cache policy's name in reports.</summary>
    public string Policy => FullPolicy;

    /// <summary>How keys are stored (keys and values share one type until caches store them separately).</summary>
    public KvElementType KeyType => ElementType;

    /// <summary>How values are stored.</summary>
    public KvElementType ValueType => ElementType;

    /// <summary>The cache one window of the text runs in (emptied between windows).</summary>
    internal KvCache CreateCache(ModelConfig config, int contextLength) => new(config, KvCacheMode.Contiguous, contextLength, ElementType);

    public override string ToString() => $"{Policy} {ElementType}";
}
