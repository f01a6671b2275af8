using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>
/// How a cache stores its keys and its values, as a value the caches are built from: it names a strategy
/// (<see cref="IKvElement{TSelf}"/>) for each side, the same one or two (llama.cpp's -ctk/-ctv: keys are the more
/// sensitive, since an error in a key moves every score it enters through the softmax), and creates the caches'
/// storage specialised for the pair, once, at construction. Every method of a cache then runs the strategies' code
/// with no branch on the types. <see cref="Of(KvElementType)"/> and <see cref="Of(KvElementType, KvElementType)"/>
/// give the built-in types; <see cref="Of{TKv}"/> and <see cref="Of{TKey, TValue}"/> any strategies, including ones
/// defined outside this library.
/// </summary>
public abstract class KvElementFormat
{
    private protected KvElementFormat() { }

    /// <summary>The strategies' names: "F16" when keys and values share a type, else "keys/values" ("F16/Q8_0").</summary>
    public string Name => KeyName == ValueName ? KeyName : $"{KeyName}/{ValueName}";

    /// <summary>The key type's name ("F32", "Q8_0", ...).</summary>
    public abstract string KeyName { get; }

    /// <summary>The value type's name.</summary>
    public abstract string ValueName { get; }

    /// <summary>True when keys and values are stored as the same strategy (kivi4 is not: per-channel keys, per-token values).</summary>
    public abstract bool IsUniform { get; }

    /// <summary>
    /// True when every row is stored on its own (<see cref="IKvElement{TSelf}.RowsStandAlone"/>), so caches may page,
    /// share and move rows; false for KIVI, whose rows are quantized in groups along positions (paged with its pending
    /// rows beside each sequence and no prefix sharing; never moved).
    /// </summary>
    public abstract bool RowsStandAlone { get; }

    /// <summary>The format of the keys alone: keys and values both stored as the key type.</summary>
    public abstract KvElementFormat Keys { get; }

    /// <summary>The format of the values alone: keys and values both stored as the value type.</summary>
    public abstract KvElementFormat Values { get; }

    /// <summary>The built-in type both sides are, or null for a mixed pair or a strategy <see cref="KvElementType"/> does not name.</summary>
    public KvElementType? Type => KeyType == ValueType ? KeyType : null;

    /// <summary>The built-in type of the keys, or null for a strategy <see cref="KvElementType"/> does not name.</summary>
    public abstract KvElementType? KeyType { get; }

    /// <summary>The built-in type of the values, or null for a strategy <see cref="KvElementType"/> does not name.</summary>
    public abstract KvElementType? ValueType { get; }

    /// <summary>Bytes of a row of <paramref name="headDim"/> elements (element plane) of a uniform format; see <see cref="Keys"/> and <see cref="Values"/> for a mixed one.</summary>
    public int RowBytes(int headDim) => Uniform().KeyRowBytes(headDim);

    /// <summary>Bytes of a row's side data (0 for none) of a uniform format.</summary>
    public int SideBytes(int headDim) => Uniform().KeySideBytes(headDim);

    private protected abstract int KeyRowBytes(int headDim);
    private protected abstract int KeySideBytes(int headDim);

    private KvElementFormat Uniform() => IsUniform ? this
        : throw new InvalidOperationException($"keys ({KeyName}) and values ({ValueName}) have rows of their own sizes; ask Keys or Values");

    /// <summary>
    /// Bytes per cached token: layers x kv_heads x (key row + key side + value row + value side), or, where the cache
    /// keeps each row once (<see cref="StoresRowsOnce"/>: a latent model's), layers x kv_heads x (row + side).
    /// </summary>
    public long BytesPerToken(ModelConfig config) =>
        (long)config.LayerCount * config.KvHeadCount * (Keys.RowBytes(config.HeadDim) + Keys.SideBytes(config.HeadDim)
            + (StoresRowsOnce(config) ? 0 : Values.RowBytes(config.HeadDim) + Values.SideBytes(config.HeadDim)));

    /// <summary>
    /// Whether a cache of this format for <paramref name="config"/> stores each row once, its values a view of its keys:
    /// the model's values are its keys (<see cref="ModelConfig.ValuesAreKeys"/>: latent attention), both sides are one
    /// strategy (so the key's bytes are the value's), and rows stand alone. A mixed pair (-ctk f16 -ctv q8_0) and KIVI
    /// (per-channel keys, per-token values, quantized in groups along positions) encode the value half differently
    /// from the key half by design, so those keep both halves.
    /// </summary>
    public bool StoresRowsOnce(ModelConfig config) => config.ValuesAreKeys && IsUniform && RowsStandAlone;

    /// <summary>
    /// Bytes a sequence holds beside its per-token rows whatever its length: KIVI's exact rows not yet quantized (the
    /// filling group, and for keys 64 more rows), layers x kv_heads x head_dim x 4 x (pending key rows + pending value
    /// rows); 0 for types whose rows are all stored as they come. A paged sequence holds them outside the pool.
    /// </summary>
    public abstract long ExactBytesPerSequence(ModelConfig config);

    /// <summary>
    /// Storage for <paramref name="capacity"/> positions; <paramref name="rope"/> (may be null) is the model's, for keys
    /// stored before RoPE; <paramref name="ring"/> (may be null) the local layers' ring.
    /// </summary>
    internal abstract ContiguousKvStorage CreateContiguous(ModelConfig config, int capacity, RotaryEmbedding? rope, LocalLayerRing? ring);

    internal abstract PagedKvStorage CreatePaged(KvBlockPool pool);

    public override string ToString() => Name;

    /// <summary>Keys and values both stored as a built-in type (the one place the enum becomes a type).</summary>
    public static KvElementFormat Of(KvElementType type) => Of(type, type);

    /// <summary>Keys stored as <paramref name="keys"/>, values as <paramref name="values"/> (built-in types).</summary>
    public static KvElementFormat Of(KvElementType keys, KvElementType values) => keys switch
    {
        KvElementType.F32 => WithValues<KvF32>(values),
        KvElementType.F16 => WithValues<KvF16>(values),
        KvElementType.Q8_0 => WithValues<KvQ8>(values),
        KvElementType.Q4_0 => WithValues<KvQ4>(values),
        KvElementType.Kivi4 => WithValues<KvKivi<KiviBits4, KiviPerChannel>>(values),
        KvElementType.Kivi2 => WithValues<KvKivi<KiviBits2, KiviPerChannel>>(values),
        _ => throw new ArgumentOutOfRangeException(nameof(keys), keys, "unknown KV element type"),
    };

    private static KvElementFormat WithValues<TKey>(KvElementType values) where TKey : struct, IKvElement<TKey> => values switch
    {
        KvElementType.F32 => Of<TKey, KvF32>(),
        KvElementType.F16 => Of<TKey, KvF16>(),
        KvElementType.Q8_0 => Of<TKey, KvQ8>(),
        KvElementType.Q4_0 => Of<TKey, KvQ4>(),
        KvElementType.Kivi4 => Of<TKey, KvKivi<KiviBits4, KiviPerToken>>(),
        KvElementType.Kivi2 => Of<TKey, KvKivi<KiviBits2, KiviPerToken>>(),
        _ => throw new ArgumentOutOfRangeException(nameof(values), values, "unknown KV element type"),
    };

    /// <summary>Keys and values both stored as any strategy, built-in or not.</summary>
    public static KvElementFormat Of<TKv>() where TKv : struct, IKvElement<TKv> => KvElementFormat<TKv, TKv>.Instance;

    /// <summary>Keys stored as <typeparamref name="TKey"/>, values as <typeparamref name="TValue"/>, built-in or not.</summary>
    public static KvElementFormat Of<TKey, TValue>() where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue> =>
        KvElementFormat<TKey, TValue>.Instance;

    /// <summary>The built-in type a strategy implements: a built-in strategy's name is its enum member's.</summary>
    private protected static KvElementType? BuiltIn(string name) =>
        Enum.GetValues<KvElementType>().Where(t => t.ToString() == name).Select(t => (KvElementType?)t).FirstOrDefault();
}

internal sealed class KvElementFormat<TKey, TValue> : KvElementFormat
    where TKey : struct, IKvElement<TKey> where TValue : struct, IKvElement<TValue>
{
    public static readonly KvElementFormat<TKey, TValue> Instance = new();

    public override KvElementType? KeyType { get; } = BuiltIn(TKey.Name);

    public override KvElementType? ValueType { get; } = BuiltIn(TValue.Name);

    public override string KeyName => TKey.Name;

    public override string ValueName => TValue.Name;

    public override bool IsUniform { get; } = typeof(TKey) == typeof(TValue);

    public override bool RowsStandAlone => TKey.RowsStandAlone && TValue.RowsStandAlone;

    public override KvElementFormat Keys => Of<TKey>();

    public override KvElementFormat Values => Of<TValue>();

    public override long ExactBytesPerSequence(ModelConfig config) =>
        (long)config.LayerCount * config.KvHeadCount * config.HeadDim * sizeof(float) * (TKey.PendingRows + TValue.PendingRows);

    private protected override int KeyRowBytes(int headDim) => TKey.RowBytes(headDim);

    private protected override int KeySideBytes(int headDim) => TKey.SideBytes(headDim);

    internal override ContiguousKvStorage CreateContiguous(ModelConfig config, int capacity, RotaryEmbedding? rope, LocalLayerRing? ring) =>
        new ContiguousKvStorage<TKey, TValue>(config, capacity, rope, ring);

    internal override PagedKvStorage CreatePaged(KvBlockPool pool) => new PagedKvStorage<TKey, TValue>(pool);
}
