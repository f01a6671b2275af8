using KvSharp.Attention;
using KvSharp.Cache.Policies;
using KvSharp.Models;

namespace KvSharp.Cache;

/// <summary>
/// The keys and values of one sequence, per layer and per KV head: each head's rows for consecutive positions are
/// contiguous (what the attention kernel streams through), stored as the cache's element type
/// (<see cref="Format"/>). Positions [0, <see cref="Length"/>) are valid. The caller owns the cache: keep it across
/// calls to continue a sequence, <see cref="Truncate"/> to rewind, <see cref="Reset"/> to start a new one.
/// </summary>
public sealed class KvCache : IKvStore
{
    private ContiguousKvStorage _storage;
    // Null for the full policy, whose path stays as it was; else the window's slots, ring and sinks.
    private readonly ContiguousWindow? _window;
    // Null unless a score-based policy (H2O, SnapKV) holds each layer and head's positions in slots of its own.
    private readonly ScoredHeads? _scored;

    public ModelConfig Config { get; }
    public KvCacheMode Mode { get; }
    /// <summary>How each key and value element is stored.</summary>
    public KvElementFormat Format { get; }
    /// <summary>The built-in element type (<see cref="Format"/>); throws for a strategy that <see cref="KvElementType"/> does not name.</summary>
    public KvElementType ElementType =>
        Format.Type ?? throw new InvalidOperationException($"this cache stores {Format.Name}, which KvElementType does not name; see Format");
    /// <summary>The most positions this cache will ever hold (the session's context length).</summary>
    public int MaxLength { get; private init; }
    /// <summary>Positions currently allocated per layer and head.</summary>
    public int Capacity => _storage.Capacity;
    /// <summary>Positions holding valid keys and values.</summary>
    public int Length { get; private set; }
    /// <summary>Which positions the cache keeps (<see cref="KvCachePolicy.Full"/> unless given).</summary>
    public KvCachePolicy Policy { get; } = KvCachePolicy.Full;
    /// <summary>Positions whose keys and values the cache holds now, per layer and KV head (under a window policy, at most
    /// sinks + ring rows; under H2O at most its budget).</summary>
    public int HeldPositions => _scored?.Held ?? _window?.Slots.Held(Length) ?? Length;

    public int LayerCount => Config.LayerCount;
    public int KvHeadCount => Config.KvHeadCount;
    public int HeadDim => Config.HeadDim;
    /// <summary>Bytes per cached token: 2 x layers x kv_heads x bytes per row (Q8_0: head_dim + 4 per group).</summary>
    public long BytesPerToken => Format.BytesPerToken(Config);
    /// <summary>Bytes a KIVI cache holds beside its per-token bytes, its exact rows (<see cref="KvElementFormat.ExactBytesPerSequence"/>); 0 for the other types.</summary>
    public long ExactBytes => Format.ExactBytesPerSequence(Config);
    /// <summary>Bytes this cache has actually allocated: its rows, and KIVI's exact rows.</summary>
    public long AllocatedBytes => BytesPerToken * Capacity + ExactBytes;
    /// <summary>Bytes holding valid data: the rows of the positions held, and KIVI's exact rows once anything is.</summary>
    public long UsedBytes => BytesPerToken * HeldPositions + (Length > 0 ? ExactBytes : 0);

    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementType elementType = KvElementType.F32)
        : this(config, mode, maxLength, KvElementFormat.Of(elementType)) { }

    /// <summary>A cache of any element type, including a strategy defined outside this library (<see cref="KvElementFormat.Of{TKv}"/>).</summary>
    /// <exception cref="KvCacheSizeException">A static cache of <paramref name="maxLength"/> positions does not fit in memory.</exception>
    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format) : this(config, mode, maxLength, format, rope: null) { }

    /// <summary><paramref name="rope"/> (the model's, may be null) is the rotation KIVI keys are stored before.</summary>
    private KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format, RotaryEmbedding? rope)
    {
        if (mode == KvCacheMode.None)
            throw new ArgumentException("KvCacheMode.None keeps no cache; a recomputing session uses a scratch cache per step", nameof(mode));
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        ArgumentNullException.ThrowIfNull(format);
        Config = config;
        Mode = mode;
        Format = format;
        MaxLength = maxLength;
        int capacity = mode == KvCacheMode.Static ? maxLength : Math.Min(maxLength, 64);
        EnsureFits(capacity);
        _storage = format.CreateContiguous(config, capacity, rope);
    }

    /// <summary>
    /// A cache that keeps the positions <paramref name="policy"/> says (<see cref="KvCachePolicy"/>): a window policy
    /// allocates sinks + window rows whatever <paramref name="maxLength"/>, which then bounds only the sequence.
    /// <paramref name="rope"/> (the model's: <c>LlmModel.Rope</c>) is needed by policies with sinks.
    /// </summary>
    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format, KvCachePolicy policy, RotaryEmbedding? rope = null)
        : this(config, mode, Math.Min(maxLength, policy?.Budget ?? maxLength), format, rope)
    {
        ArgumentNullException.ThrowIfNull(policy);
        policy.Validate(maxLength);
        PerLayerPositions.Refuse(config, policy, format);
        Policy = policy;
        MaxLength = maxLength;
        if (policy.KeepsEverything) return;
        // A ring overwrites rows in place, and sinks rewrite their keys; a type that quantizes rows in groups along
        // positions (KIVI) can do neither, so the pair is refused rather than read back wrongly.
        if (!format.RowsStandAlone)
            throw new NotSupportedException($"cache policy '{policy}' overwrites rows in place, which {format.Name} quantizes in groups along positions; use full, or another KV type");
        if (policy.EvictsByScore)
        {
            _scored = new ScoredHeads(config, policy, maxLength);
            _scored.AddSlots(0, Capacity);
            return;
        }
        _window = new ContiguousWindow(config, policy, maxLength, rope, rows =>
        {
            if (_storage.Capacity < rows) _storage.Grow(rows, 0);
            return _storage;
        });
    }

    /// <summary>Checks that <paramref name="capacity"/> positions can be allocated, before allocating them.</summary>
    private void EnsureFits(int capacity) => KvSizing.EnsureFits(
        $"a {Mode.ToString().ToLowerInvariant()} KV cache of {capacity:N0} positions ({Format.Name}, {BytesPerToken:N0} bytes per position)",
        (Int128)BytesPerToken * capacity, (Int128)Math.Max(Format.Keys.RowBytes(HeadDim), Format.Values.RowBytes(HeadDim)) * capacity);

    /// <summary>Makes room for <paramref name="length"/> positions (contiguous mode grows by doubling; static never grows).</summary>
    public void EnsureCapacity(int length)
    {
        if (length > MaxLength)
            throw new InvalidOperationException($"sequence of {length} tokens exceeds the cache's context length {MaxLength}");
        if (_window != null)
        {
            _window.Reserve(Length, length, EnsureFits);
            _storage = _window.Storage;
            return;
        }
        if (_scored != null)
        {
            ReserveScored(length);
            return;
        }
        if (length <= Capacity) return;
        int newCapacity = (int)Math.Min(MaxLength, Math.Max(length, Capacity * 2L));
        EnsureFits(newCapacity);
        _storage.Grow(newCapacity, Length);
    }

    /// <summary>
    /// Slots for a step up to <paramref name="length"/> in every head of a score-based policy, growing the rows when the
    /// free ones do not suffice: H2O to exactly what the step needs (B + T at most, never again for smaller steps),
    /// SnapKV at least doubling (its decode steps append without evicting).
    /// </summary>
    private void ReserveScored(int length)
    {
        int tokens = length - Length, more = _scored!.RowsNeeded(tokens);
        if (more > 0)
        {
            int grown = Capacity + more;
            if (Policy.Eviction == KvEviction.SnapKv) grown = Math.Max(grown, (int)Math.Min(MaxLength, Capacity * 2L));
            EnsureFits(grown);
            int old = Capacity;
            _storage.Grow(grown, old);
            _scored.AddSlots(old, grown);
        }
        _scored.Reserve(Length, length);
    }

    /// <summary>
    /// Positions whose rows the cache holds for (<paramref name="layer"/>, <paramref name="kvHead"/>), ascending: a
    /// score-based policy chooses them per head; the others hold the same positions in every head.
    /// </summary>
    public int[] PositionsHeld(int layer, int kvHead)
    {
        if (_scored != null) return _scored.Of(layer, kvHead).Positions.ToArray();
        int held = HeldPositions, sinks = Math.Min(Policy.Sinks, held);
        return [.. Enumerable.Range(0, sinks), .. Enumerable.Range(Length - (held - sinks), held - sinks)];
    }

    /// <summary>
    /// The stored bytes of one head's key rows for positions [0, Capacity): position p's at p x RowBytes, in the
    /// element type's layout (<see cref="Format"/>). For inspection; <see cref="ReadKey"/> gives the floats.
    /// </summary>
    public Span<byte> KeyRows(int layer, int kvHead) => _storage.Rows(layer, kvHead, false);

    public Span<byte> ValueRows(int layer, int kvHead) => _storage.Rows(layer, kvHead, true);

    /// <summary>The side data of one head's key rows (Q8_0: their scales), position p's at p x SideBytes; empty for types without.</summary>
    public Span<byte> KeySide(int layer, int kvHead) => _storage.Side(layer, kvHead, false);

    public Span<byte> ValueSide(int layer, int kvHead) => _storage.Side(layer, kvHead, true);

    /// <summary>The floats the key at <paramref name="position"/> stands for (rounded or dequantized as stored).</summary>
    public void ReadKey(int layer, int kvHead, int position, Span<float> row) => _storage.Read(layer, kvHead, false, Slot(layer, kvHead, position), row);

    public void ReadValue(int layer, int kvHead, int position, Span<float> row) => _storage.Read(layer, kvHead, true, Slot(layer, kvHead, position), row);

    /// <summary>The row that holds <paramref name="position"/> (itself, unless a window policy wraps it into a ring).</summary>
    private int Slot(int position) => _window?.Slots.Slot(position) ?? position;

    /// <summary>The row of one head that holds <paramref name="position"/>: a score-based policy's own slot, else <see cref="Slot(int)"/>.</summary>
    private int Slot(int layer, int kvHead, int position)
    {
        if (_scored == null) return Slot(position);
        int slot = _scored.Of(layer, kvHead).SlotOf(position);
        return slot >= 0 ? slot
            : throw new ArgumentOutOfRangeException(nameof(position), position, $"cache policy '{Policy}' does not hold position {position} in layer {layer}, KV head {kvHead}");
    }

    /// <summary>
    /// Declares positions [Length, <paramref name="end"/>) one prompt: SnapKV compresses it once, when its last token
    /// has run, however many forward passes it takes (unmarked, each forward of several tokens is a prompt: what
    /// <c>kvsharp eval</c>'s chunks are). Other policies ignore it.
    /// </summary>
    public void BeginPrompt(int end) => _scored?.MarkPrompt(Length, end);

    void IKvStore.Reserve(int length)
    {
        EnsureCapacity(length);
        _storage.Prepare(Length, length);
    }

    void IKvStore.Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (_scored != null)
        {
            // Each head puts its new position in a slot of its own (one its evictions freed).
            for (int h = 0, hd = HeadDim; h < KvHeadCount; h++)
            {
                int slot = _scored.Of(layer, h).SlotOf(position);
                _storage.WriteRow(layer, h, false, slot, keys.Slice(h * hd, hd));
                _storage.WriteRow(layer, h, true, slot, values.Slice(h * hd, hd));
            }
            return;
        }
        _storage.Write(layer, Slot(position), keys, values);
        if (position < Policy.Sinks) _window?.Sinks?.Capture(layer, position, keys);
    }

    void IKvStore.Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        if (_window != null) _window.Attend(layer, kvHead, block, scale, scratch);
        else if (_scored != null) _storage.AttendScored(layer, kvHead, block, scale, scratch, _scored);
        else _storage.Attend(layer, kvHead, block, scale, scratch);
    }

    bool IKvStore.AttendsWholeChunks => _scored != null;

    void IKvStore.Prefetch(int layer, int kvHead, int end) => _storage.Prefetch(layer, kvHead, Math.Min(Math.Min(end, Capacity), KvPrefetch.Positions));

    /// <summary>Declares positions [Length, newLength) written (by the forward pass, for every layer).</summary>
    public void Commit(int newLength)
    {
        int most = _window != null || _scored != null ? MaxLength : Capacity;
        if (newLength < Length || newLength > most)
            throw new ArgumentOutOfRangeException(nameof(newLength), newLength, $"must be within [{Length}, {most}]");
        Length = newLength;
    }

    /// <summary>Forgets positions from <paramref name="length"/> on, so the sequence can continue from there.</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"cannot truncate a cache of {Length} tokens to {length}");
        _window?.CheckTruncate(length, Length);
        _scored?.Truncate(length, Length);
        // A ring's rows past the new length may hold older positions still in the window: they are overwritten, not cleared.
        if (_window == null && _scored == null) _storage.Clear(length, Length);
        Length = length;
    }

    /// <summary>
    /// Context shift (<see cref="ContextShift"/>): keeps positions [0, <paramref name="keep"/>), discards the next
    /// <paramref name="discard"/>, moves the rest down with their keys re-rotated by <paramref name="rope"/> (the
    /// model's: <c>LlmModel.Rope</c>), so the sequence continues at Length - discard.
    /// </summary>
    public void Shift(int keep, int discard, RotaryEmbedding rope)
    {
        ArgumentNullException.ThrowIfNull(rope);
        if (Config.HasPerLayerPositions)
            throw new NotSupportedException($"a context shift does not apply to {Config.Architecture}: {PerLayerPositions.Why(Config)}");
        if (_window != null)
            throw new InvalidOperationException($"a context shift does not apply to a cache with policy '{Policy}': its window moves by itself and never fills");
        if (_scored != null)
            throw new InvalidOperationException($"a context shift does not apply to a cache with policy '{Policy}': it evicts by score to its budget and holds positions per head, which a shift would renumber under it");
        if (!Format.RowsStandAlone)
            throw new NotSupportedException($"context shift moves cached rows, which {Format.Name} quantizes in groups along positions and cannot move");
        new ContextShift(keep, discard).Apply(_storage, Config, Length, rope);
        Length -= discard;
    }

    /// <summary>Empties the cache for an unrelated request. The old keys and values are zeroed, not just hidden.</summary>
    public void Reset()
    {
        _storage.Clear(0, _scored != null ? Capacity : Math.Min(Length, Capacity));
        _scored?.Truncate(0, Length);
        Length = 0;
    }
}
