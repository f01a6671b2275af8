using KvSharp.Models;

namespace KvSharp.Cache.Policies;

/// <summary>Writes one head's key row into a cache's storage (each storage layout has its own).</summary>
internal interface IKeyRowWriter
{
    void WriteKey(int layer, int kvHead, int position, ReadOnlySpan<float> row);
}

/// <summary>
/// The attention sinks' keys of a <c>sinks:S+window:W</c> cache, and the rotation they are stored at.
/// Why only the sinks move: a RoPE score depends on the distance between query and key alone, so the window's keys
/// can stay rotated at their own positions and the query at its own, and the distances the policy assigns (sinks at
/// 0..S-1, the window right after them) hold as long as each sink sits at s + (windowStart - S). Re-rotating the W
/// window keys every step, as a literal renumbering would (ContextShift does that once per shift), would cost as much
/// as the attention itself; rotating S sink keys costs S rows. Keys are not kept before RoPE for the same reason: the
/// kernel would have to rotate every key it reads.
/// Each rotation starts from the key as first written (kept here in floats), never from an earlier rotation, so
/// after any number of window moves a sink key is one rounding away from the key rotated at its new position.
/// Where a cache stores each row once (a latent model's: its values are its keys), rewriting a sink key rewrites its
/// value too: the rotated part, which nothing reads from a value, and, in a quantized type, the latent values sharing
/// its group, quantized again from the floats first written.
/// </summary>
internal sealed class SinkKeys
{
    private readonly int _sinks, _kvHeads, _headDim;
    private readonly RotaryEmbedding _rope;
    private readonly IKeyRowWriter _writer;
    // [(layer x kv_heads + head) x sinks + sink] x head_dim: the keys as the forward pass wrote them (offset 0).
    private readonly float[] _written;
    // Per (layer, head): the offset the stored sink rows are rotated by; -1 after a sink was (re)written.
    private readonly int[] _offset;
    // Per (layer, head): the forward pass may attend one sequence's chunk as several blocks at once, each query of
    // which wants the sinks at its own offset; rotating and attending hold this, so one block's rows stay put while
    // it reads them. A decode step is one block: the lock is never contended there.
    private readonly Lock[] _locks;

    /// <summary>The sinks of <paramref name="policy"/>, or null for a policy without any.</summary>
    public static SinkKeys? For(ModelConfig config, KvCachePolicy policy, RotaryEmbedding? rope, IKeyRowWriter writer) =>
        policy.Sinks == 0 ? null : new SinkKeys(config, policy.Sinks,
            rope ?? throw new ArgumentException($"cache policy '{policy}' moves its sink keys: it needs the model's rotary embedding (LlmModel.Rope)", nameof(rope)),
            writer);

    private SinkKeys(ModelConfig config, int sinks, RotaryEmbedding rope, IKeyRowWriter writer)
    {
        if (rope.Dims != config.RopeDimensions)
            throw new ArgumentException($"the rotary embedding rotates {rope.Dims} dimensions but the cache's model rotates {config.RopeDimensions}", nameof(rope));
        _sinks = sinks;
        _kvHeads = config.KvHeadCount;
        _headDim = config.HeadDim;
        _rope = rope;
        _writer = writer;
        _written = new float[config.LayerCount * _kvHeads * sinks * _headDim];
        _offset = new int[config.LayerCount * _kvHeads];
        _locks = new Lock[_offset.Length];
        for (int i = 0; i < _locks.Length; i++) _locks[i] = new Lock();
    }

    /// <summary>Held while a block rotates the sinks of (layer, head) and attends over them.</summary>
    public Lock LockOf(int layer, int kvHead) => _locks[layer * _kvHeads + kvHead];

    /// <summary>Keeps a sink's keys (all heads of one layer, kv_heads x head_dim) as written.</summary>
    public void Capture(int layer, int position, ReadOnlySpan<float> keys)
    {
        for (int h = 0; h < _kvHeads; h++)
        {
            keys.Slice(h * _headDim, _headDim).CopyTo(_written.AsSpan(((layer * _kvHeads + h) * _sinks + position) * _headDim));
            _offset[layer * _kvHeads + h] = -1;
        }
    }

    /// <summary>
    /// Stores the first <paramref name="visible"/> sink keys of (layer, head) (those the sequence has: a short one has
    /// fewer than S) rotated from position s to s + <paramref name="offset"/>.
    /// </summary>
    public void RotateTo(int layer, int kvHead, int offset, int visible)
    {
        int index = layer * _kvHeads + kvHead;
        if (_offset[index] == offset) return;
        Span<float> row = _headDim <= 512 ? stackalloc float[_headDim] : new float[_headDim];
        for (int s = 0; s < Math.Min(visible, _sinks); s++)
        {
            _written.AsSpan((index * _sinks + s) * _headDim, _headDim).CopyTo(row);
            if (offset != 0) _rope.Rerotate(row, _headDim, s, s + offset);
            _writer.WriteKey(layer, kvHead, s, row);
        }
        _offset[index] = offset;
    }
}
