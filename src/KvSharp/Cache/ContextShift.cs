using KvSharp.Models;

namespace KvSharp.Cache;

/// <summary>
/// llama.cpp's context shift as a cache policy: of a sequence of <c>length</c> cached positions it keeps the first
/// <see cref="Keep"/> where they are (the BOS token, a system prompt), discards the next <see cref="Discard"/>, and
/// moves the rest down by <see cref="Discard"/> positions, so the sequence goes on at <c>length - Discard</c>.
/// Cached keys carry their position (they are stored after RoPE), so each moved key is re-rotated from its old
/// position to its new one (<see cref="RotaryEmbedding.Rerotate(Span{float}, int, ReadOnlySpan{double}, ReadOnlySpan{double})"/>);
/// values carry none and move as stored bytes. Where a cache stores each row once (a latent model's: its values are
/// its keys) the row moves once and is re-rotated as a key: the value's rotated part turns too, which nothing reads
/// (the heads expand the latent past it), and a quantized type re-quantizes the group the rotated part shares with the
/// latent, as llama.cpp's shift of its MLA cache (V a view of K) does. The policy decides which positions stay and where they sit; the storage
/// only moves and rewrites rows.
/// The moved positions' keys and values in layers past the first were computed while the discarded tokens were in
/// context, and keep that: a shift is not a fresh prefill of the kept tokens (llama.cpp's is not either).
/// </summary>
public readonly record struct ContextShift(int Keep, int Discard)
{
    /// <summary>
    /// The shift that makes room for <paramref name="incoming"/> more tokens after <paramref name="length"/> cached
    /// ones in a context of <paramref name="contextLength"/>: keeps min(<paramref name="keep"/>, length) and discards
    /// <paramref name="discard"/> positions, by default half of the rest (llama.cpp's n_discard = n_left / 2), or more
    /// if the incoming tokens need more room.
    /// </summary>
    /// <exception cref="ContextOverflowException">Even discarding every position after the kept ones leaves no room for the incoming tokens.</exception>
    public static ContextShift ToFit(int length, int incoming, int contextLength, int keep, int? discard = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        if (discard is < 1) throw new ArgumentOutOfRangeException(nameof(discard), discard, "a context shift discards at least one position");
        keep = Math.Min(keep, length);
        int needed = length + incoming - contextLength, movable = length - keep;
        if (needed <= 0)
            throw new ArgumentException($"{incoming} tokens after {length} fit in the context of {contextLength}: there is nothing to shift", nameof(incoming));
        if (needed > movable)
            throw new ContextOverflowException(length, incoming, contextLength,
                $"a context shift keeping the first {keep} of the {length} cached positions frees at most {movable}");
        int d = Math.Max(discard ?? movable / 2, needed);
        return new ContextShift(keep, Math.Min(d, movable));
    }

    /// <summary>Positions that move: [Keep + Discard, length) go to [Keep, length - Discard).</summary>
    public int Moved(int length) => length - Keep - Discard;

    /// <summary>Checks that the shift fits a sequence of <paramref name="length"/> positions.</summary>
    public void Validate(int length)
    {
        if (Keep < 0 || Discard < 1 || (long)Keep + Discard > length)
            throw new ArgumentOutOfRangeException(nameof(Discard), Discard,
                $"a context shift keeping {Keep} and discarding {Discard} positions needs keep >= 0, discard >= 1 and keep + discard <= the {length} cached positions");
    }

    /// <summary>Moves and re-rotates the rows of <paramref name="storage"/>, which holds <paramref name="length"/> positions; zeroes the freed rows.</summary>
    internal void Apply(ContiguousKvStorage storage, ModelConfig config, int length, RotaryEmbedding rope)
    {
        Validate(length);
        if (rope.Dims != config.RopeDimensions)
            throw new ArgumentException($"the rotary embedding rotates {rope.Dims} dimensions but the cache's model rotates {config.RopeDimensions}", nameof(rope));
        storage.Move(Keep + Discard, Keep, Moved(length));
        storage.Clear(length - Discard, length);
        int hd = config.HeadDim, half = rope.Dims / 2;
        var cos = new double[half];
        var sin = new double[half];
        var row = new float[hd];
        for (int p = Keep; p < length - Discard; p++)
        {
            // One set of angles per position serves every layer and head.
            rope.RerotationAngles(p + Discard, p, cos, sin);
            for (int l = 0; l < config.LayerCount; l++)
                for (int h = 0; h < config.KvHeadCount; h++)
                {
                    storage.Read(l, h, false, p, row);
                    rope.Rerotate(row, hd, cos, sin);
                    storage.WriteRow(l, h, false, p, row);
                }
        }
    }
}
