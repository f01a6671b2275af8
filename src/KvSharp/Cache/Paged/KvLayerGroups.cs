using KvSharp.Models;

namespace KvSharp.Cache.Paged;

/// <summary>
/// Which layers a <see cref="KvBlockPool"/> block holds. Usually one group, every layer: a block holds all of a
/// position range's keys and values. For a model whose local layers attend through a window of their own (Gemma 2/3),
/// the layers are split into groups of the same size, so every block is the same size and one pool serves them all
/// (vLLM's hybrid allocator): group 0 holds the global layers, each later group as many local layers (the last one
/// padded with unused slots where the counts do not divide). A sequence keeps one block table per group; a local
/// group's table lets go of the blocks before its window (<see cref="PagedKvSequence"/>), so a long sequence holds
/// every position only in its global layers.
/// </summary>
public sealed class KvLayerGroups
{
    private readonly int[] _group;
    private readonly int[] _slot;

    /// <summary>Layers (slots) in every block; the pool's rows per block are this x kv_heads x block size, per side.</summary>
    public int LayersPerBlock { get; }
    /// <summary>Groups: one, or the global group and the local ones.</summary>
    public int Count { get; }
    /// <summary>Whether the local layers are grouped apart from the global ones.</summary>
    public bool SplitsLocalLayers => Count > 1;
    /// <summary>The window a local group's layers attend through (0 for the global group, and for a whole-layer pool).</summary>
    public int LocalWindow { get; }
    /// <summary>Slots of the last local group that hold no layer (allocated with every block of that group, never used).</summary>
    public int PaddingSlots { get; }

    private KvLayerGroups(int[] group, int[] slot, int layersPerBlock, int count, int localWindow, int padding)
    {
        _group = group;
        _slot = slot;
        LayersPerBlock = layersPerBlock;
        Count = count;
        LocalWindow = localWindow;
        PaddingSlots = padding;
    }

    /// <summary>One group: a block holds every layer (the layout of a model without local layers, or of --swa-full).</summary>
    public static KvLayerGroups Whole(ModelConfig config) =>
        new(new int[config.LayerCount], [.. Enumerable.Range(0, config.LayerCount)], config.LayerCount, 1, 0, 0);

    /// <summary>
    /// The global layers apart from the local ones where the model has both and <paramref name="splitLocalLayers"/>;
    /// else <see cref="Whole"/>.
    /// </summary>
    public static KvLayerGroups For(ModelConfig config, bool splitLocalLayers)
    {
        if (!splitLocalLayers || !config.HasLayerWindows) return Whole(config);
        var global = Enumerable.Range(0, config.LayerCount).Where(l => config.LayerWindow(l) == 0).ToArray();
        var local = Enumerable.Range(0, config.LayerCount).Where(l => config.LayerWindow(l) > 0).ToArray();
        if (global.Length == 0 || local.Length == 0) return Whole(config);
        int size = global.Length, localGroups = (local.Length + size - 1) / size;
        var group = new int[config.LayerCount];
        var slot = new int[config.LayerCount];
        for (int i = 0; i < global.Length; i++) slot[global[i]] = i;
        for (int i = 0; i < local.Length; i++)
        {
            group[local[i]] = 1 + i / size;
            slot[local[i]] = i % size;
        }
        return new KvLayerGroups(group, slot, size, 1 + localGroups, config.SlidingWindow!.Value, localGroups * size - local.Length);
    }

    /// <summary>The group layer <paramref name="layer"/> is stored in.</summary>
    public int GroupOf(int layer) => _group[layer];

    /// <summary>The layer's slot in its group's blocks.</summary>
    public int SlotOf(int layer) => _slot[layer];

    /// <summary>Whether a layer of <paramref name="group"/> reads only its window (a local group).</summary>
    public static bool IsLocal(int group) => group > 0;

    public override string ToString() => SplitsLocalLayers
        ? $"1 global group and {Count - 1} local groups of {LayersPerBlock} layer{(LayersPerBlock == 1 ? "" : "s")}" + (PaddingSlots > 0 ? $" ({PaddingSlots} slots unused)" : "")
        : $"every layer in one block";
}
