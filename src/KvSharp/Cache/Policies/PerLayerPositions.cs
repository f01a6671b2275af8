using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// What a model whose layers alternate between a sliding window and the whole context (Gemma 2/3,
/// <see cref="ModelConfig.HasLayerWindows"/>) can be cached with: every position of every layer, in a type whose rows
/// stand alone. Its windows are masks in the attention of the local layers, which a policy that drops or renumbers
/// positions for all layers at once (windows, sinks, score-based eviction) or KIVI's grouped rows would break.
/// </summary>
internal static class LayerWindows
{
    public static void Refuse(ModelConfig config, KvCachePolicy policy, KvElementFormat format)
    {
        if (!config.HasPerLayerPositions) return;
        if (!policy.KeepsEverything)
            throw new NotSupportedException($"cache policy '{policy}' does not apply to {config.Architecture}: " + Why(config) + "; use full");
        if (!format.RowsStandAlone)
            throw new NotSupportedException($"{format.Name} does not apply to {config.Architecture}: " + Why(config) +
                ", and KIVI keeps keys unrotated in groups along positions; use f32, f16, q8_0 or q4_0");
    }

    /// <summary>How the model's layers differ in how positions enter them.</summary>
    public static string Why(ModelConfig config) => config.HasLayerWindows
        ? $"its local layers attend through a window of {config.SlidingWindow} positions and its global layers need every position"
        : $"every {config.NoRopeLayerStep}th layer rotates neither queries nor keys, which a cache that moves or re-rotates positions for every layer would break";
}
