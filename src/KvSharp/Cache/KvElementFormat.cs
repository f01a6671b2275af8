using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache;

/// <summary>
/// A KV element type as a value the caches are built from: it names a strategy (<see cref="IKvElement{TSelf}"/>) and
/// creates the caches' storage specialised for it, once, at construction. Every method of a cache then runs the
/// strategy's code with no branch on the type. <see cref="Of(KvElementType)"/> gives the built-in types;
/// <see cref="Of{TKv}"/> any strategy, including one defined outside this library.
/// </summary>
public abstract class KvElementFormat
{
    private protected KvElementFormat() { }

    /// <summary>The strategy's name ("F32", "Q8_0", ...).</summary>
    public abstract string Name { get; }

    /// <summary>The built-in type this is, or null for a strategy <see cref="KvElementType"/> does not name.</summary>
    public abstract KvElementType? Type { get; }

    /// <summary>Bytes of a row of <paramref name="headDim"/> elements (element plane).</summary>
    public abstract int RowBytes(int headDim);

    /// <summary>Bytes of a row's side data (0 for none).</summary>
    public abstract int SideBytes(int headDim);

    /// <summary>Bytes per cached token: 2 (K and V) x layers x kv_heads x (row bytes + side bytes).</summary>
    public long BytesPerToken(ModelConfig config) =>
        2L * config.LayerCount * config.KvHeadCount * (RowBytes(config.HeadDim) + SideBytes(config.HeadDim));

    internal abstract ContiguousKvStorage CreateContiguous(ModelConfig config, int capacity);

    internal abstract PagedKvStorage CreatePaged(KvBlockPool pool);

    public override string ToString() => Name;

    /// <summary>The strategy of a built-in type (the one place the enum becomes a type).</summary>
    public static KvElementFormat Of(KvElementType type) => type switch
    {
        KvElementType.F32 => Of<KvF32>(),
        KvElementType.F16 => Of<KvF16>(),
        KvElementType.Q8_0 => Of<KvQ8>(),
        KvElementType.Q4_0 => Of<KvQ4>(),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown KV element type"),
    };

    /// <summary>Any strategy, built-in or not.</summary>
    public static KvElementFormat Of<TKv>() where TKv : struct, IKvElement<TKv> => KvElementFormat<TKv>.Instance;
}

internal sealed class KvElementFormat<TKv> : KvElementFormat where TKv : struct, IKvElement<TKv>
{
    public static readonly KvElementFormat<TKv> Instance = new();

    // A built-in strategy's name is its enum member's.
    public override KvElementType? Type { get; } =
        Enum.GetValues<KvElementType>().Where(t => t.ToString() == TKv.Name).Select(t => (KvElementType?)t).FirstOrDefault();

    public override string Name => TKv.Name;

    public override int RowBytes(int headDim) => TKv.RowBytes(headDim);

    public override int SideBytes(int headDim) => TKv.SideBytes(headDim);

    internal override ContiguousKvStorage CreateContiguous(ModelConfig config, int capacity) => new ContiguousKvStorage<TKv>(config, capacity);

    internal override PagedKvStorage CreatePaged(KvBlockPool pool) => new PagedKvStorage<TKv>(pool);
}
