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
    // Null unless the model's local layers keep a ring of their window (the default where a model has them).
    private readonly LocalLayerRing? _ring;

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

    /// <summary>
    /// Rows each layer with a sliding window of its own keeps (Gemma 2/3's local layers: a ring of its window, see
    /// <see cref="LocalLayerRing"/>); 0 where every layer keeps every position (no such layers, or
    /// <c>fullLocalLayers</c>).
    /// </summary>
    public int LocalLayerRows => _ring?.Rows ?? 0;

    /// <summary>Positions whose keys and values <paramref name="layer"/> holds now: <see cref="HeldPositions"/>, or a local layer's ring's.</summary>
    public int HeldPositionsOf(int layer) => KeepsRing(layer) ? Length - OldestHeld(layer) : HeldPositions;

    /// <summary>The oldest position whose keys and values <paramref name="layer"/> still holds: 0, or where a local layer's ring starts.</summary>
    public int OldestHeld(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, LayerCount);
        return KeepsRing(layer) ? Math.Min(_ring!.Oldest, Length) : 0;
    }

    /// <summary>Whether <paramref name="layer"/> keeps a ring of its window (<see cref="LocalLayerRows"/> rows).</summary>
    internal bool KeepsRing(int layer) => _ring != null && _ring.IsLocal(layer);

    /// <summary>The row of <paramref name="layer"/>'s arrays (<see cref="KeyRows"/>, ...) that holds <paramref name="position"/>.</summary>
    public int RowOf(int layer, int position) => KeepsRing(layer) ? _ring!.Slot(position) : Slot(position);

    public int LayerCount => Config.LayerCount;
    public int KvHeadCount => Config.KvHeadCount;
    public int HeadDim => Config.HeadDim;
    /// <summary>
    /// Bytes per cached token: 2 x layers x kv_heads x bytes per row (Q8_0: head_dim + 4 per group), or 1 x where each
    /// row is stored once (<see cref="ValuesAreKeys"/>).
    /// </summary>
    public long BytesPerToken => Format.BytesPerToken(Config);
    /// <summary>
    /// Whether each row is stored once, the values a view of the keys (<see cref="KvElementFormat.StoresRowsOnce"/>: a
    /// latent model's cache of one type): <see cref="ValueRows"/> and <see cref="ValueSide"/> are then the key's.
    /// </summary>
    public bool ValuesAreKeys => _storage.RowsOnce;
    /// <summary>Bytes a KIVI cache holds beside its per-token bytes, its exact rows (<see cref="KvElementFormat.ExactBytesPerSequence"/>); 0 for the other types.</summary>
    public long ExactBytes => Format.ExactBytesPerSequence(Config);
    /// <summary>Bytes this cache has actually allocated: its rows, and KIVI's exact rows.</summary>
    public long AllocatedBytes => (long)BytesAt(Capacity) + ExactBytes;
    /// <summary>Bytes holding valid data: the rows of the positions held, and KIVI's exact rows once anything is.</summary>
    public long UsedBytes => (_ring == null ? BytesPerToken * HeldPositions
        : (long)LocalLayerRing.Bytes(Config, BytesPerToken, HeldPositions, Length - Math.Min(_ring.Oldest, Length))) + (Length > 0 ? ExactBytes : 0);

    /// <summary>Bytes of the rows at <paramref name="capacity"/> positions: a local layer's at most its ring's.</summary>
    private Int128 BytesAt(int capacity) => _ring == null ? (Int128)BytesPerToken * capacity : LocalLayerRing.Bytes(Config, BytesPerToken, capacity, _ring.Rows);

    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementType elementType = KvElementType.F32)
        : this(config, mode, maxLength, KvElementFormat.Of(elementType)) { }

    /// <summary>A cache of any element type, including a strategy defined outside this library (<see cref="KvElementFormat.Of{TKv}"/>).</summary>
    /// <exception cref="KvCacheSizeException">A static cache of <paramref name="maxLength"/> positions does not fit in memory.</exception>
    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format) : this(config, mode, maxLength, format, rope: null, ring: true) { }

    /// <summary>
    /// <paramref name="rope"/> (the model's, may be null) is the rotation KIVI keys are stored before;
    /// <paramref name="ring"/> says whether a model's local layers keep a ring of their window.
    /// </summary>
    private KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format, RotaryEmbedding? rope, bool ring)
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
        // A ring as long as the context would change nothing.
        if (KvSizing.KeepsLocalRing(config, format, fullLocalLayers: !ring) && KvSizing.LocalLayerRows(config) < maxLength)
            _ring = new LocalLayerRing(config);
        EnsureFits(capacity);
        _storage = format.CreateContiguous(config, capacity, rope, _ring);
    }

    /// <summary>
    /// A cache that keeps the positions <paramref name="policy"/> says (<see cref="KvCachePolicy"/>): a window policy
    /// allocates sinks + window rows whatever <paramref name="maxLength"/>, which then bounds only the sequence.
    /// <paramref name="rope"/> (the model's: <c>LlmModel.Rope</c>) is needed by policies with sinks.
    /// A model whose local layers attend through a window of their own (Gemma 2/3) keeps only a ring of that window in
    /// them (<see cref="LocalLayerRows"/>) unless <paramref name="fullLocalLayers"/> (llama.cpp's --swa-full): the
    /// memory of most of its layers then stops growing with the context, at the price of rewinds no longer than the
    /// ring allows (<see cref="CanTruncateTo"/>).
    /// </summary>
    public KvCache(ModelConfig config, KvCacheMode mode, int maxLength, KvElementFormat format, KvCachePolicy policy, RotaryEmbedding? rope = null,
        bool fullLocalLayers = false)
        : this(config, mode, Math.Min(maxLength, policy?.Budget ?? maxLength), format, rope, ring: !fullLocalLayers)
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
        $"a {Mode.ToString().ToLowerInvariant()} KV cache of {capacity:N0} positions ({Format.Name}, {BytesPerToken:N0} bytes per position" +
            (_ring != null ? $", {_ring.LocalLayers} of {LayerCount} layers a ring of {_ring.Rows:N0} rows)" : ")"),
        BytesAt(capacity), (Int128)Math.Max(Format.Keys.RowBytes(HeadDim), Format.Values.RowBytes(HeadDim)) * capacity);

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
        if (KeepsRing(layer)) return [.. Enumerable.Range(OldestHeld(layer), HeldPositionsOf(layer))];
        int held = HeldPositions, sinks = Math.Min(Policy.Sinks, held);
        return [.. Enumerable.Range(0, sinks), .. Enumerable.Range(Length - (held - sinks), held - sinks)];
    }

    /// <summary>
    /// The stored bytes of one head's key rows: position p's at <see cref="RowOf"/>(layer, p) x RowBytes (p itself,
    /// unless a window policy or a local layer's ring wraps it), in the element type's layout (<see cref="Format"/>).
    /// For inspection; <see cref="ReadKey"/> gives the floats.
    /// </summary>
    public Span<byte> KeyRows(int layer, int kvHead) => _storage.Rows(layer, kvHead, false);

    /// <summary>The stored bytes of one head's value rows: the key rows themselves where <see cref="ValuesAreKeys"/>.</summary>
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
        if (_ring != null)
        {
            // A step longer than the ring was sized for would overwrite rows its own first tokens still read.
            if (_ring.NeedsMoreRows(length - Length, out int rows))
            {
                KvSizing.EnsureFits($"a ring of {rows:N0} rows for {_ring.LocalLayers} local layers",
                    (Int128)BytesPerToken / LayerCount * _ring.LocalLayers * Math.Min(Capacity, rows), (Int128)Format.Keys.RowBytes(HeadDim) * rows);
                _storage.ResizeRing(rows, Math.Min(_ring.Oldest, Length), Length);
                _ring.Resize(rows);
            }
            _ring.Advance(length);
        }
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
                if (!_storage.RowsOnce) _storage.WriteRow(layer, h, true, slot, values.Slice(h * hd, hd));
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

    void IKvStore.Prefetch(int layer, int kvHead, int end) => _storage.Prefetch(layer, kvHead, end);

    /// <summary>Declares positions [Length, newLength) written (by the forward pass, for every layer).</summary>
    public void Commit(int newLength)
    {
        int most = _window != null || _scored != null ? MaxLength : Capacity;
        if (newLength < Length || newLength > most)
            throw new ArgumentOutOfRangeException(nameof(newLength), newLength, $"must be within [{Length}, {most}]");
        Length = newLength;
    }

    /// <summary>
    /// Whether <see cref="Truncate"/>(<paramref name="length"/>) can keep a usable prefix: always, unless the model's
    /// local layers keep a ring (<see cref="LocalLayerRows"/>) that no longer holds the window the next query reads.
    /// Where it cannot, <see cref="Reset"/> and recompute.
    /// </summary>
    public bool CanTruncateTo(int length) => length >= 0 && length <= Length && (_ring == null || _ring.CanResumeAt(length));

    /// <summary>Forgets positions from <paramref name="length"/> on, so the sequence can continue from there.</summary>
    /// <exception cref="InvalidOperationException">The local layers' ring no longer holds what position <paramref name="length"/> reads (<see cref="CanTruncateTo"/>).</exception>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"cannot truncate a cache of {Length} tokens to {length}");
        if (!CanTruncateTo(length))
            throw new InvalidOperationException($"cannot rewind to {length} tokens: the local layers keep a ring of their {_ring!.Window}-position window " +
                $"({_ring.Rows} rows) that now starts at position {_ring.Oldest}, after what position {length} reads from {_ring.FirstRead(length)}; " +
                "reset the cache and recompute, or keep the local layers whole (fullLocalLayers)");
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
        // A ring rewound earlier still holds rows past the length: they are zeroed too.
        _storage.Clear(0, _scored != null ? Capacity : Math.Min(Math.Max(Length, _ring?.HighWater ?? 0), Capacity));
        _scored?.Truncate(0, Length);
        _ring?.Clear();
        Length = 0;
    }

    /// <summary>
    /// After rows were copied in (a restored session file): the sequence is <paramref name="length"/> long and its local
    /// layers hold positions from <paramref name="oldest"/>.
    /// </summary>
    internal void Restored(int length, int oldest)
    {
        if (Length != 0) throw new InvalidOperationException("rows are restored into an empty cache");
        _ring?.Restore(oldest, length);
        Commit(length);
    }
}
