using KvSharp.Cache;
using KvSharp.Models;

namespace KvSharp.Evaluation;

/// <summary>
/// One cache configuration an evaluation measures against the exact cache (F32, every position kept): today the KV
/// element types of keys and values, with every position kept (the "full" policy). A cache policy (sliding window,
/// sinks, eviction) is one more property here, applied where the setup creates its cache; the evaluator runs every
/// setup the same way.
/// </summary>
public sealed record EvalSetup(KvElementType KeyType, KvElementType ValueType)
{
    /// <summary>Keys and values stored as the same type.</summary>
    public EvalSetup(KvElementType elementType) : this(elementType, elementType) { }

    /// <summary>The policy that keeps every position, as reports name it.</summary>
    public const string FullPolicy = "full";

    /// <summary>The cache policy's name in reports.</summary>
    public string Policy => FullPolicy;

    /// <summary>The keys' and values' types together.</summary>
    public KvElementFormat Format => KvElementFormat.Of(KeyType, ValueType);

    /// <summary>The cache one window of the text runs in (emptied between windows).</summary>
    internal KvCache CreateCache(ModelConfig config, int contextLength) => new(config, KvCacheMode.Contiguous, contextLength, Format);

    public override string ToString() => $"{Policy} {Format.Name}";
}
