using KvSharp.Models;

namespace KvSharp.Cache;

/// <summary>
/// What a KV cache costs, computed without allocating it, and the check every cache makes before it allocates: the
/// bytes asked for must neither overflow nor exceed what the process can get.
/// </summary>
public static class KvSizing
{
    /// <summary>Bytes per cached token with keys and values stored as <paramref name="type"/>.</summary>
    public static long BytesPerToken(ModelConfig config, KvElementType type) => KvElementFormat.Of(type).BytesPerToken(config);

    /// <summary>Bytes per cached token with keys stored as <paramref name="keys"/> and values as <paramref name="values"/>.</summary>
    public static long BytesPerToken(ModelConfig config, KvElementType keys, KvElementType values) =>
        KvElementFormat.Of(keys, values).BytesPerToken(config);

    /// <summary>
    /// Bytes one sequence holds beside its per-token bytes with keys stored as <paramref name="keys"/> and values as
    /// <paramref name="values"/>: KIVI's exact rows (<see cref="KvElementFormat.ExactBytesPerSequence"/>); 0 for the others.
    /// </summary>
    public static long ExactBytesPerSequence(ModelConfig config, KvElementType keys, KvElementType values) =>
        KvElementFormat.Of(keys, values).ExactBytesPerSequence(config);

    /// <summary>
    /// Bytes one sequence of <paramref name="positions"/> positions holds in a contiguous cache (<see cref="KvCache"/>):
    /// bytes per token times positions, except that a model's local layers keep a ring of their window
    /// (<see cref="KvCache.LocalLayerRows"/>) unless <paramref name="fullLocalLayers"/>. KIVI's exact rows not counted.
    /// Saturates at <see cref="long.MaxValue"/>.
    /// </summary>
    public static long SequenceBytes(ModelConfig config, KvElementFormat format, long positions, bool fullLocalLayers = false)
    {
        long perToken = format.BytesPerToken(config);
        Int128 bytes = KeepsLocalRing(config, format, fullLocalLayers) ? LocalLayerRing.Bytes(config, perToken, positions, LocalLayerRows(config))
            : (Int128)perToken * positions;
        return bytes > long.MaxValue ? long.MaxValue : (long)bytes;
    }

    /// <summary>
    /// The least KV a sequence of <paramref name="positions"/> positions needs: every position in the global layers, the
    /// last window in a model's local layers (what no layout beats; KIVI's exact rows not counted).
    /// </summary>
    public static long LeastSequenceBytes(ModelConfig config, KvElementFormat format, long positions)
    {
        long perLayer = format.BytesPerToken(config) / config.LayerCount, rows = 0;
        for (int l = 0; l < config.LayerCount; l++) rows += config.LayerWindow(l) is > 0 and var w ? Math.Min(positions, w) : positions;
        return perLayer * rows;
    }

    /// <summary>
    /// Positions a contiguous cache's local layers keep (<see cref="KvCache.LocalLayerRows"/>: the window, a forward
    /// pass's default step and a tile; more after a larger step); 0 for a model without layers of their own window.
    /// </summary>
    public static int LocalLayerRows(ModelConfig config) =>
        config.HasLayerWindows ? LocalLayerRing.RowsFor(config.SlidingWindow!.Value, LocalLayerRing.DefaultStep) : 0;

    /// <summary>
    /// Whether a contiguous cache of <paramref name="format"/> keeps the model's local layers as a ring: the model has
    /// such layers, the rows stand alone (not KIVI), and they are not asked to keep every position.
    /// </summary>
    public static bool KeepsLocalRing(ModelConfig config, KvElementFormat format, bool fullLocalLayers) =>
        !fullLocalLayers && LocalLayerRows(config) > 0 && format.RowsStandAlone;

    /// <summary>Bytes this process can use (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>: physical memory or the container's limit).</summary>
    public static long AvailableBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>
    /// Throws <see cref="KvCacheSizeException"/> if <paramref name="bytes"/> exceeds the available memory or
    /// <paramref name="arrayBytes"/> (the largest single allocation) exceeds what one .NET array can hold.
    /// </summary>
    /// <param name="what">What was asked, for the message ("a static KV cache of 100,000,000 positions (F32)").</param>
    internal static void EnsureFits(string what, Int128 bytes, Int128 arrayBytes)
    {
        long available = AvailableBytes;
        if (bytes > available)
            throw new KvCacheSizeException($"{what} needs {bytes:N0} bytes, more than the {available:N0} bytes of memory available", bytes, available);
        if (arrayBytes > Array.MaxLength)
            throw new KvCacheSizeException(
                $"{what} needs {arrayBytes:N0} bytes in one array (one KV head's rows), more than a .NET array holds ({Array.MaxLength:N0})",
                bytes, available);
    }
}
