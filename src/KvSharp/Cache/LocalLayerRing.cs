using KvSharp.Attention;
using KvSharp.Models;

namespace KvSharp.Cache;

/// <summary>
/// The rows of the layers that attend through a sliding window of their own (<see cref="ModelConfig.LayerWindow"/>:
/// Gemma 2/3's local layers) kept as a ring, as llama.cpp's SWA cache does: such a layer never reads a position older
/// than its window, so it keeps only the last <see cref="Rows"/> positions, position p in row p mod Rows, while the
/// global layers keep every position. For Gemma 3 (five local layers per global one) that is most of the cache.
/// </summary>
/// <remarks>
/// A step of T tokens writes its rows before it attends, and the attention kernel reads whole 32-position tiles from
/// the one holding the first token's window start (<see cref="CausalAttention.TileSize"/>), so a ring of at least
/// window + T + TileSize rows still holds every row the step reads; a larger step grows the ring first.
/// Rewinding the sequence (<see cref="KvCache.Truncate"/>) is possible while the rows the next query needs are still
/// in the ring: a short rewind (a re-tokenized reply, a recomputed last token) always is, a long one is not
/// (<see cref="CanResumeAt"/>), and the session then recomputes.
/// </remarks>
internal sealed class LocalLayerRing
{
    /// <summary>The step the ring is first sized for: the forward pass's default batch.</summary>
    public const int DefaultStep = 256;

    private readonly bool[] _local;

    public LocalLayerRing(ModelConfig config, int step = DefaultStep)
    {
        Window = config.SlidingWindow ?? throw new ArgumentException($"{config.Architecture} has no sliding window", nameof(config));
        _local = new bool[config.LayerCount];
        for (int l = 0; l < _local.Length; l++) _local[l] = config.LayerWindow(l) > 0;
        LocalLayers = CountLocal(config);
        Rows = RowsFor(Window, step);
    }

    /// <summary>The window of the local layers.</summary>
    public int Window { get; }

    /// <summary>Rows a local layer keeps: a multiple of <see cref="CausalAttention.TileSize"/>, so a tile never wraps.</summary>
    public int Rows { get; private set; }

    /// <summary>One past the highest position written since the cache was last emptied.</summary>
    public int HighWater { get; private set; }

    /// <summary>The oldest position whose rows the local layers still hold (those from it to the sequence's length).</summary>
    public int Oldest { get; private set; }

    public bool IsLocal(int layer) => _local[layer];

    /// <summary>Layers that keep a ring.</summary>
    public int LocalLayers { get; }

    private static int CountLocal(ModelConfig config) => Enumerable.Range(0, config.LayerCount).Count(l => config.LayerWindow(l) > 0);

    /// <summary>The row of a local layer that holds <paramref name="position"/>.</summary>
    public int Slot(int position) => position % Rows;

    /// <summary>Ring rows that let a step of <paramref name="step"/> tokens read every row its window needs.</summary>
    public static int RowsFor(int window, int step)
    {
        const int tile = CausalAttention.TileSize;
        return (int)Math.Min(int.MaxValue / 2, ((long)window + step + tile + tile - 1) / tile * tile);
    }

    /// <summary>
    /// Bytes of a cache holding <paramref name="positions"/> positions of <paramref name="config"/>'s layers at
    /// <paramref name="bytesPerToken"/> (all layers) when its local layers keep at most <paramref name="rows"/> of them.
    /// </summary>
    public static Int128 Bytes(ModelConfig config, long bytesPerToken, long positions, int rows)
    {
        int local = CountLocal(config);
        return (Int128)(bytesPerToken / config.LayerCount) * ((Int128)(config.LayerCount - local) * positions + (Int128)local * Math.Min(positions, rows));
    }

    /// <summary>Whether a step of <paramref name="step"/> tokens needs a larger ring; if so, the rows it needs.</summary>
    public bool NeedsMoreRows(int step, out int rows)
    {
        rows = RowsFor(Window, step);
        return rows > Rows;
    }

    /// <summary>The ring now has <paramref name="rows"/> rows, its held positions moved to their new rows by the storage.</summary>
    public void Resize(int rows) => Rows = rows;

    /// <summary>A step writes positions up to <paramref name="end"/>: rows older than end - Rows are overwritten.</summary>
    public void Advance(int end)
    {
        HighWater = Math.Max(HighWater, end);
        Oldest = Math.Max(Oldest, HighWater - Rows);
    }

    /// <summary>The first position a query at <paramref name="position"/> reads in a local layer: its window's tile.</summary>
    public int FirstRead(int position) => Math.Max(0, position - Window + 1) / CausalAttention.TileSize * CausalAttention.TileSize;

    /// <summary>Whether a sequence rewound to <paramref name="length"/> still has every local row its next query reads.</summary>
    public bool CanResumeAt(int length) => length == 0 || FirstRead(length) >= Oldest;

    /// <summary>Restored rows: the ring holds positions [<paramref name="oldest"/>, <paramref name="end"/>).</summary>
    public void Restore(int oldest, int end)
    {
        HighWater = end;
        Oldest = oldest;
    }

    /// <summary>An emptied cache: nothing written yet.</summary>
    public void Clear() => HighWater = Oldest = 0;
}
