using KvSharp.Attention;
using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>
/// A <see cref="KvCache"/>'s rows under a window policy: S sink rows, then a ring of W rows, grown only when a prefill
/// chunk needs more. The ring must hold W + T - 1 positions for a chunk of T tokens: the chunk's keys are all written
/// before its first query attends, and that query still needs the W - 1 positions before it (llama.cpp sizes its
/// sliding-window cache n_swa + n_ubatch for the same reason). Decode steps never grow it.
/// </summary>
internal sealed class ContiguousWindow : IKeyRowWriter
{
    private ContiguousKvStorage _storage;
    private readonly ModelConfig _config;
    private readonly int _maxLength;

    public KeptSlots Slots { get; private set; }
    public SinkKeys? Sinks { get; }

    public ContiguousWindow(ModelConfig config, KvCachePolicy policy, int maxLength, RotaryEmbedding? rope, Func<int, ContiguousKvStorage> create)
    {
        int window = policy.Window ?? throw new ArgumentException("the full policy keeps every position: it needs no window", nameof(policy));
        policy.Validate(maxLength);
        _config = config;
        _maxLength = maxLength;
        Slots = new KeptSlots(policy.Sinks, window, window);
        _storage = create(policy.Sinks + window);
        Sinks = SinkKeys.For(config, policy, rope, this);
    }

    public ContiguousKvStorage Storage => _storage;

    public int Capacity => Slots.Sinks + Slots.RingRows;

    /// <summary>Makes the ring hold a chunk that takes the sequence from <paramref name="length"/> to <paramref name="newLength"/>.</summary>
    public void Reserve(int length, int newLength, Action<int> ensureFits)
    {
        int needed = Math.Min(Slots.Window + (newLength - length) - 1, _maxLength - Slots.Sinks);
        if (needed <= Slots.RingRows) return;
        ensureFits(Slots.Sinks + needed);
        var grown = Slots with { RingRows = needed };
        // Each held position moves from its slot in the old ring to its slot in the new one (bytes as stored).
        _storage.Grow(grown.Sinks + grown.RingRows, Capacity);
        int from = Math.Min(length, Slots.OldestHeld(length));
        var rows = new byte[length - from][];
        for (int layer = 0; layer < _config.LayerCount; layer++)
            for (int head = 0; head < _config.KvHeadCount; head++)
                for (int plane = 0; plane < 4; plane++)
                {
                    bool value = plane % 2 == 1;
                    Span<byte> bytes = plane < 2 ? _storage.Rows(layer, head, value) : _storage.Side(layer, head, value);
                    int size = bytes.Length / (grown.Sinks + grown.RingRows);
                    if (size == 0) continue;
                    for (int p = from; p < length; p++) rows[p - from] = bytes.Slice(Slots.Slot(p) * size, size).ToArray();
                    for (int p = from; p < length; p++) rows[p - from].CopyTo(bytes[(grown.Slot(p) * size)..]);
                }
        Slots = grown;
    }

    /// <summary>Checks that the sequence can go back to <paramref name="length"/>: the window of its next query must still be held.</summary>
    public void CheckTruncate(int length, int held)
    {
        if (Slots.WindowStart(length) < Slots.OldestHeld(held))
            throw new InvalidOperationException(
                $"cannot truncate a windowed cache of {held} tokens to {length}: the ring no longer holds positions from {Slots.WindowStart(length)}");
    }

    public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch) =>
        _storage.AttendKept(layer, kvHead, block, scale, scratch, Slots, Sinks);

    public void WriteKey(int layer, int kvHead, int position, ReadOnlySpan<float> row) => _storage.WriteRow(layer, kvHead, false, Slots.Slot(position), row);
}
