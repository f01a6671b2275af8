using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// What a model whose layers differ in how positions enter them (<see cref="ModelConfig.HasPerLayerPositions"/>: Gemma
/// 2/3's local layers with windows of their own, SmolLM3's layers without rope) can be cached with: every position of
/// every layer, in a type whose rows stand alone. A policy that drops, renumbers or re-rotates positions for all layers
/// at once (windows, sinks, score-based eviction, context shift) or KIVI's grouped, unrotated rows would break it.
/// </summary>
internal static class PerLayerPositions
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
    public static string Why(ModelConfig config) =>
        config.HasLayerWindows ? $"its local layers attend through a window of {config.SlidingWindow} positions and its global layers need every position"
        : config.LearnedPositions ? "positions enter through a learned embedding added to each token, not by rotating keys, so cached keys cannot be moved or re-rotated to other positions"
        : $"every {config.NoRopeLayerStep}th layer rotates neither queries nor keys, which a cache that moves or re-rotates positions for every layer would break";
}
