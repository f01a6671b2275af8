using KvSharp.Attention;
using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// The transformer forward pass (every architecture <see cref="ModelConfig"/> reads; dense or a mixture of experts)
/// over a batch of tokens that may belong to several sequences, each reading and appending to its own <see cref="IKvStore"/>. Prefill passes many tokens of one sequence, decode one
/// token of each running sequence; all run the same code, and because every kernel is batch-invariant a token's
/// logits are bit-identical however it was batched.
/// One ForwardPass owns scratch buffers sized for <see cref="MaxBatch"/> tokens and is not thread-safe; forward
/// passes sharing a <see cref="KernelPool"/> take turns on it.
/// </summary>
public sealed partial class ForwardPass
{
    private readonly ModelConfig _c;
    private readonly ModelWeights _w;
    private readonly KernelPool _pool;
    private readonly MatMul _matMul;
    private readonly RotaryEmbedding _rope;
    // Gemma 3's local layers rotate with a rope base of their own: their angles, or null where every layer shares one.
    private readonly RotaryEmbedding? _localRope;
    private readonly float _attentionScale;
    // The mixture-of-experts feed-forward (its own scratch); null for a dense model.
    private readonly ExpertFeedForward? _experts;
    // Attention scratch is laid out [kv head][row]: a query block uses its rows' share, so items never overlap.
    private readonly int _scratchPerRow;

    // Activations for up to MaxBatch tokens, row-major [token][feature].
    private readonly float[] _x, _xb, _q, _k, _v, _attn, _proj, _gate, _up, _cos, _sin, _attnScratch, _hidden;
    private readonly float[]? _localCos, _localSin;
    // Per row: the sequence it belongs to and its position there.
    private readonly IKvStore[] _rowStore;
    private readonly int[] _rowPosition;
    // Attention work: blocks of consecutive rows of one sequence (first row, row count) and the order to run them in.
    private readonly int[] _blockFirstRow, _blockTokens, _blockCost, _blockOrder;
    private int _blockCount;
    private bool _attentionInline;
    // Each block's KV heads go in _headGroups items of _headsPerItem consecutive heads (the last may hold fewer).
    private int _headsPerItem, _headGroups;

    /// <summary>
    /// The most tokens one attention work item serves: each key and value row is loaded once for all of them, and
    /// beyond this the rows are already reused enough that bigger blocks only make the items harder to balance.
    /// </summary>
    private const int MaxBlockTokens = 16;

    /// <summary>(Block, KV head) pairs per thread to aim for when sizing query blocks, so that dealing the costliest first evens the threads out.</summary>
    private const int ItemsPerThread = 8;

    /// <summary>
    /// Attention items per thread to aim for once a block's heads are grouped (<see cref="PlanAttentionBlocks"/>): two,
    /// so that blocks of unequal cost still even out; one where the blocks cost the same and split evenly.
    /// </summary>
    private const int GroupedItemsPerThread = 2;

    public int MaxBatch { get; }

    public ForwardPass(ModelConfig config, ModelWeights weights, KernelPool pool, int maxBatch = 256)
    {
        _c = config;
        _w = weights;
        _pool = pool;
        _matMul = new MatMul(pool);
        _rope = new RotaryEmbedding(config, weights.RopeFrequencyFactors);
        if (config.LocalRopeTheta is float localTheta)
        {
            _localRope = new RotaryEmbedding(config with { RopeTheta = localTheta, RopeFrequencyScale = 1f, Yarn = null, RopeAttentionFactor = 1f }, null);
            _localCos = new float[maxBatch * config.RopeDimensions / 2];
            _localSin = new float[maxBatch * config.RopeDimensions / 2];
        }
        _attentionScale = config.AttentionScale;
        if (config.IsMixtureOfExperts) _experts = new ExpertFeedForward(config, _matMul, maxBatch);
        MaxBatch = maxBatch;
        _x = new float[maxBatch * config.EmbeddingDim];
        _xb = new float[maxBatch * config.EmbeddingDim];
        _q = new float[maxBatch * config.QueryDim];
        _k = new float[maxBatch * config.KvDim];
        _v = new float[maxBatch * config.KvDim];
        _attn = new float[maxBatch * config.QueryDim];
        _proj = new float[maxBatch * config.EmbeddingDim];
        // A mixture of experts has scratch of its own; only its leading dense layers (DeepSeek) use these.
        bool denseLayers = !config.IsMixtureOfExperts || config.LeadingDenseLayers > 0;
        _gate = new float[denseLayers ? maxBatch * config.FeedForwardDim : 0];
        _up = new float[denseLayers ? maxBatch * config.FeedForwardDim : 0];
        if (config.LatentAttention is { } mla) _latent = new LatentScratch(mla, config.HeadCount, maxBatch);
        _cos = new float[maxBatch * config.RopeDimensions / 2];
        _sin = new float[maxBatch * config.RopeDimensions / 2];
        _scratchPerRow = CausalAttention.ScratchLength(config.GroupSize);
        _attnScratch = new float[maxBatch * config.KvHeadCount * _scratchPerRow];
        _hidden = new float[maxBatch * config.EmbeddingDim];
        _rowStore = new IKvStore[maxBatch];
        _rowPosition = new int[maxBatch];
        _blockFirstRow = new int[maxBatch];
        _blockTokens = new int[maxBatch];
        _blockCost = new int[maxBatch];
        _blockOrder = new int[maxBatch];
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> of one sequence at positions store.Length.. and appends their keys and values.
    /// Writes logits for every token ([tokens, vocab]) when <paramref name="allLogits"/>, else for the last one.
    /// Prompts longer than <see cref="MaxBatch"/> run in chunks.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, IKvStore store, Span<float> logits, bool allLogits)
    {
        int vocab = _c.VocabSize;
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        if (store.Length + tokens.Length > store.MaxLength)
            throw new ContextOverflowException(store.Length, tokens.Length, store.MaxLength);
        for (int start = 0; start < tokens.Length; start += MaxBatch)
        {
            int n = Math.Min(MaxBatch, tokens.Length - start);
            bool last = start + n == tokens.Length;
            var request = allLogits ? LogitsRequest.All : last ? LogitsRequest.Last : LogitsRequest.None;
            var chunkLogits = allLogits ? logits.Slice(start * vocab, n * vocab) : logits;
            Forward(tokens.Slice(start, n), [new BatchSegment(store, n, request)], chunkLogits);
        }
    }

    /// <summary>
    /// One batched step: <paramref name="tokens"/> is the concatenation of every segment's tokens, in segment order.
    /// Logit rows are written in segment order (see <see cref="BatchSegment.LogitRows"/>).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<BatchSegment> segments, Span<float> logits)
    {
        int n = Validate(tokens, segments, logits);
        lock (_pool)
        {
            int row = 0;
            foreach (var s in segments)
            {
                s.Store.Reserve(s.Store.Length + s.TokenCount);
                for (int i = 0; i < s.TokenCount; i++, row++)
                {
                    _rowStore[row] = s.Store;
                    _rowPosition[row] = s.Store.Length + i;
                }
            }
            PlanAttentionBlocks(segments, n);
            try
            {
                RunLayers(tokens, n);
            }
            finally
            {
                Array.Clear(_rowStore, 0, n);
            }
            foreach (var s in segments) s.Store.Commit(s.Store.Length + s.TokenCount);
            ComputeLogits(segments, logits);
        }
    }

    private int Validate(ReadOnlySpan<int> tokens, ReadOnlySpan<BatchSegment> segments, Span<float> logits)
    {
        int vocab = _c.VocabSize, n = 0, logitRows = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            var s = segments[i];
            if (s.TokenCount <= 0) throw new ArgumentException($"segment {i} has {s.TokenCount} tokens", nameof(segments));
            if (s.Store.Length + s.TokenCount > s.Store.MaxLength)
                throw new ContextOverflowException(s.Store.Length, s.TokenCount, s.Store.MaxLength);
            if (_w.RopePositionLimit is int limit && s.Store.Length + s.TokenCount > limit)
                throw new ContextOverflowException(s.Store.Length, s.TokenCount, limit, _w.PositionLimitReason(_c));
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(segments[j].Store, s.Store))
                    throw new ArgumentException($"segments {j} and {i} append to the same sequence", nameof(segments));
            n += s.TokenCount;
            logitRows += s.LogitRows;
        }
        if (n != tokens.Length) throw new ArgumentException($"segments cover {n} tokens but {tokens.Length} were given", nameof(tokens));
        if (n == 0) throw new ArgumentException("no tokens to run", nameof(tokens));
        if (n > MaxBatch) throw new ArgumentException($"a step of {n} tokens exceeds the batch capacity {MaxBatch}", nameof(tokens));
        if (logits.Length < logitRows * vocab)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats, need {logitRows * vocab}", nameof(logits));
        for (int i = 0; i < n; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[i]} at index {i} is outside the vocabulary [0, {vocab})");
        return n;
    }

    /// <summary>Embedding, then every transformer block; leaves the residual stream in _x.</summary>
    private void RunLayers(ReadOnlySpan<int> tokens, int n)
    {
        int e = _c.EmbeddingDim, qd = _c.QueryDim, kvd = _c.KvDim, f = _c.FeedForwardDim, half = _rope.Dims / 2;
        var x = _x.AsSpan(0, n * e);
        var q = _q.AsSpan(0, n * qd);
        var k = _k.AsSpan(0, n * kvd);
        var v = _v.AsSpan(0, n * kvd);
        var attn = _attn.AsSpan(0, n * qd);
        var proj = _proj.AsSpan(0, n * e);
        // A mixture of experts has scratch of its own (_experts), and a dense gate and up only for leading dense layers.
        var gate = _gate.Length > 0 ? _gate.AsSpan(0, n * f) : default;
        var up = _up.Length > 0 ? _up.AsSpan(0, n * f) : default;

        // Embedding lookup: dequantize each token's row exactly (ggml get_rows); rotary angles per row position.
        for (int t = 0; t < n; t++)
        {
            Dequantize.Row(_w.TokenEmbedding.Type, _w.TokenEmbedding.Row(tokens[t]), x.Slice(t * e, e));
            if (_c.EmbeddingScale != 1f) FloatOps.Scale(x.Slice(t * e, e), _c.EmbeddingScale);
            // gpt2: the learned embedding of the row's position is added (_xb is free until the first norm).
            if (_w.PositionEmbedding is { } table)
            {
                Dequantize.Row(table.Type, table.Row(_rowPosition[t]), _xb.AsSpan(t * e, e));
                FloatOps.Add(x.Slice(t * e, e), _xb.AsSpan(t * e, e));
            }
            _rope.Angles(_rowPosition[t], _cos.AsSpan(t * half, half), _sin.AsSpan(t * half, half));
            _localRope?.Angles(_rowPosition[t], _localCos.AsSpan(t * half, half), _localSin.AsSpan(t * half, half));
            // ggml multiplies cos and sin by the magnitude (mscale: attention factor, YaRN's) where it computes them.
            if (_rope.Magnitude != 1f)
            {
                FloatOps.Scale(_cos.AsSpan(t * half, half), _rope.Magnitude);
                FloatOps.Scale(_sin.AsSpan(t * half, half), _rope.Magnitude);
            }
        }
        ThrowIfNonFinite(x, EmbeddingStage);

        for (int l = 0; l < _c.LayerCount; l++)
        {
            var layer = _w.Layers[l];

            // Attention block: norm, q/k/v projections, rotary positions, append to the cache, attend over it.
            var input = PreNorm(layer.AttentionNorm, layer.AttentionNormBias, n);
            if (layer.Latent is { } latent) ProjectLatent(layer, latent, input, n);
            else _matMul.Multiply(layer.Query, q, layer.Key, k, layer.Value, v, input, n);
            var positions = new PositionRowsWork(this, l);
            _pool.Run(ref positions, n);
            var work = new AttentionWork(this, l);
            _pool.Run(ref work, _blockCount * _headGroups, inline: _attentionInline);
            _matMul.Multiply(layer.AttentionOutput, layer.Latent is { } mla ? ExpandLatentValues(mla, n) : attn, n, proj);
            if (layer.OutputBias != null) AddBias(layer.OutputBias, n);
            PostNorm(layer.AttentionPostNorm, n);
            if (_c.ResidualScale != 1f) FloatOps.Scale(proj, _c.ResidualScale);
            // A parallel feed-forward reads the stream the attention read: the attention's output waits (in _hidden,
            // free until the logits) and joins after the feed-forward's, x + ffn + attn as ggml adds GPT-NeoX's.
            var attended = _hidden.AsSpan(0, n * e);
            if (_c.ParallelFeedForward) proj.CopyTo(attended);
            else FloatOps.Add(x, proj);

            // Feed-forward block: norm, SwiGLU (GeGLU for gemma; up alone and GELU for the GPT-2 family) and the down
            // projection, or a mixture of experts; then the residual. A parallel one reads the attention's normalised
            // input (phi2) or normalises the same stream with its own norm (GPT-NeoX).
            if (!_c.ParallelFeedForward || layer.FeedForwardNorm != null) input = PreNorm(layer.FeedForwardNorm, layer.FeedForwardNormBias, n);
            if (layer.Experts is { } moe) _experts!.Run(moe, input, n, proj);
            else
            {
                if (layer.IsGated) _matMul.Multiply(layer.Gate, gate, layer.Up, up, input, n);
                else _matMul.Multiply(layer.Up, input, n, up);
                var activated = new ActivationRowsWork(this, layer);
                _pool.Run(ref activated, n);
                _matMul.Multiply(layer.Down, layer.IsGated ? gate : up, n, proj);
                if (layer.DownBias != null) AddBias(layer.DownBias, n);
            }
            PostNorm(layer.FeedForwardPostNorm, n);
            if (_c.ResidualScale != 1f) FloatOps.Scale(proj, _c.ResidualScale);
            FloatOps.Add(x, proj);
            if (_c.ParallelFeedForward) FloatOps.Add(x, attended);
            ThrowIfNonFinite(x, l);
        }
    }

    /// <summary>
    /// What a block reads: the stream RMS-normalised with <paramref name="weight"/> (LayerNorm-ed with it and
    /// <paramref name="bias"/> for <see cref="ModelConfig.LayerNorm"/> models) into _xb, or the stream itself for a model
    /// without pre-norms (OLMo 2).
    /// </summary>
    private ReadOnlySpan<float> PreNorm(float[]? weight, float[]? bias, int n)
    {
        int e = _c.EmbeddingDim;
        if (weight == null) return _x.AsSpan(0, n * e);
        var norm = new NormRowsWork(this, _x, weight, n, _xb, bias);
        _pool.Run(ref norm, NormRowsWork.Items(n));
        return _xb.AsSpan(0, n * e);
    }

    /// <summary>Gemma 2/3: the block's output (in _proj) RMS-normalised in place before it joins the residual stream.</summary>
    private void PostNorm(float[]? weight, int n)
    {
        if (weight == null) return;
        var norm = new NormRowsWork(this, _proj, weight, n, _proj);
        _pool.Run(ref norm, NormRowsWork.Items(n));
    }

    /// <summary>A block output's bias (attn_output.bias, ffn_down.bias), added to each row of _proj.</summary>
    private void AddBias(float[] bias, int n)
    {
        int e = _c.EmbeddingDim;
        for (int t = 0; t < n; t++) FloatOps.Add(_proj.AsSpan(t * e, e), bias);
    }

    private const int EmbeddingStage = -1;

    /// <summary>
    /// Stops at the first stage whose output holds NaN or infinity (damaged weights), before it spreads to the
    /// logits and the sampler quietly turns it into an empty text. One pass over n x embedding floats per layer,
    /// against the layer's n x embedding x ~12 x embedding multiply-adds: nothing measurable, and no allocation.
    /// </summary>
    private void ThrowIfNonFinite(ReadOnlySpan<float> values, int stage)
    {
        if (!NonFinite.Any(values)) return;
        throw new NonFiniteActivationsException(_c.Name, stage switch
        {
            EmbeddingStage => "the token embedding (token_embd.weight)",
            _ when stage == _c.LayerCount => "the output norm and classifier (output_norm.weight, output.weight)",
            _ => $"layer {stage} of {_c.LayerCount} (blk.{stage}.*)",
        });
    }

    /// <summary>
    /// Splits each segment's rows into query blocks of at most <see cref="MaxBlockTokens"/> tokens, small enough that
    /// there are about <see cref="ItemsPerThread"/> (block, KV head) pairs per thread, and orders the blocks costliest
    /// first (a block's work grows with its tokens times the positions they see) so the last items to be claimed are
    /// the short ones. Then groups each block's KV heads into items of consecutive heads, as few as still give every
    /// thread <see cref="GroupedItemsPerThread"/> of them.
    /// How rows are blocked and heads grouped never changes a bit of the result.
    /// </summary>
    /// <remarks>
    /// Why heads are grouped: a block's heads lie side by side in memory (a paged block holds a layer's heads one after
    /// another, 4 KiB each for F32 at head_dim 64 and 16 positions), and threads claim items in turn. One head per item
    /// dealt neighbouring heads to different threads, so each thread read every other 4 KiB run and the two interfered:
    /// decode attention at 16 sequences of 32-96 positions (`small`, F32 KV, two threads) took 5.4 ms a step against
    /// 3.1-3.4 with whole blocks of heads per item; one sequence 0.37 ms against 0.27-0.32.
    /// </remarks>
    private void PlanAttentionBlocks(ReadOnlySpan<BatchSegment> segments, int n)
    {
        int size = Math.Clamp(n * _c.KvHeadCount / (ItemsPerThread * _pool.Threads), 1, MaxBlockTokens);
        int row = 0;
        _blockCount = 0;
        foreach (var s in segments)
        {
            int blocks = s.Store.AttendsWholeChunks ? 1 : (s.TokenCount + size - 1) / size;
            for (int b = 0; b < blocks; b++)
            {
                int tokens = s.TokenCount / blocks + (b < s.TokenCount % blocks ? 1 : 0);
                _blockFirstRow[_blockCount] = row;
                _blockTokens[_blockCount] = tokens;
                _blockCost[_blockCount] = -tokens * (_rowPosition[row] + tokens); // negated: the sort ascends
                _blockOrder[_blockCount] = _blockCount;
                _blockCount++;
                row += tokens;
            }
        }
        Array.Sort(_blockCost, _blockOrder, 0, _blockCount);
        // Attention this small (a small model's decode step) runs on the calling thread, as a small matmul does: handing
        // items to another core costs more than they take.
        long cost = 0;
        for (int b = 0; b < _blockCount; b++) cost -= _blockCost[b];
        _attentionInline = cost * _c.HeadCount * _c.HeadDim * 2 < MatMul.InlineWork;

        // Blocks of one cost that split evenly over the threads need no more than an item per thread.
        int kvHeads = _c.KvHeadCount, threads = _pool.Threads;
        bool even = _blockCost[0] == _blockCost[_blockCount - 1] && (_blockCount % threads == 0 || threads % _blockCount == 0);
        int wanted = (even ? 1 : GroupedItemsPerThread) * threads;
        int groups = Math.Clamp((wanted + _blockCount - 1) / _blockCount, 1, kvHeads);
        _headsPerItem = (kvHeads + groups - 1) / groups;
        _headGroups = (kvHeads + _headsPerItem - 1) / _headsPerItem;
    }

    /// <summary>
    /// One item: a query block and a group of consecutive KV heads. The block's tokens, each head's group of query heads
    /// each, attend over their sequence.
    /// </summary>
    private void AttendItem(int layer, int item)
    {
        // Threads claim items in turn, so this thread's next item is about one per thread ahead: start its rows now.
        int next = item + _pool.Threads;
        if (next < _blockCount * _headGroups)
        {
            int nb = _blockOrder[next / _headGroups], nf = _blockFirstRow[nb];
            _rowStore[nf].Prefetch(layer, next % _headGroups * _headsPerItem, _rowPosition[nf] + _blockTokens[nb]);
        }
        int b = _blockOrder[item / _headGroups], firstHead = item % _headGroups * _headsPerItem;
        int first = _blockFirstRow[b], tokens = _blockTokens[b];
        int hd = _c.HeadDim, group = _c.GroupSize, width = group * hd, span = (tokens - 1) * _c.QueryDim + width;
        int end = Math.Min(firstHead + _headsPerItem, _c.KvHeadCount);
        // A decode token's heads in one call where the store can: across the heads a block's rows are one run, not a
        // short run per head (`small` Q4_0, F32 KV, two threads: steps of 1-64 sequences at 32-96 positions in 0.91-0.96x the time).
        int heads = end - firstHead, groupAt = first * _c.QueryDim + firstHead * width;
        int window = _c.LayerWindow(layer);
        // gpt-oss: each query head's sink logit, in the query heads' order (a KV head's group is consecutive).
        ReadOnlySpan<float> sinkLogits = _w.Layers[layer].SinkLogits;
        // The heads-together path has neither windows nor soft caps: such a layer's heads go one at a time.
        if (tokens == 1 && window == 0 && _c.AttentionSoftCap == 0 && _rowStore[first].TryAttendHeads(layer, firstHead, heads, _q.AsSpan(groupAt, heads * width), _attn.AsSpan(groupAt, heads * width),
                _rowPosition[first], _attentionScale, _attnScratch.AsSpan((firstHead * MaxBatch + first) * _scratchPerRow), MaxBatch * _scratchPerRow,
                sinkLogits.IsEmpty ? default : sinkLogits.Slice(firstHead * group, heads * group)))
            return;
        for (int h = firstHead; h < end; h++)
        {
            // The next head's rows lie right after this one's: start them as this one begins (2-3% of a 16-sequence step).
            if (h + 1 < end) _rowStore[first].Prefetch(layer, h + 1, _rowPosition[first] + tokens);
            int at = first * _c.QueryDim + h * width;
            // Token first + i sees positions [0, its position]: the causal mask.
            var block = new QueryBlock(_q.AsSpan(at, span), _attn.AsSpan(at, span), tokens, _c.QueryDim, _rowPosition[first], group, hd)
                { Window = window, SoftCap = _c.AttentionSoftCap, SinkLogits = sinkLogits.IsEmpty ? default : sinkLogits.Slice(h * group, group) };
            _rowStore[first].Attend(layer, h, block, _attentionScale,
                _attnScratch.AsSpan((h * MaxBatch + first) * _scratchPerRow, tokens * _scratchPerRow));
        }
    }

    private readonly struct AttentionWork(ForwardPass owner, int layer) : IParallelWork
    {
        public void Execute(int index) => owner.AttendItem(layer, index);
    }

    /// <summary>Final norm and classifier for the rows the segments asked for.</summary>
    private void ComputeLogits(ReadOnlySpan<BatchSegment> segments, Span<float> logits)
    {
        int e = _c.EmbeddingDim, rows = 0, row = 0;
        foreach (var s in segments)
        {
            int first = s.Logits == LogitsRequest.All ? row : row + s.TokenCount - 1;
            for (int r = first; s.Logits != LogitsRequest.None && r < row + s.TokenCount; r++, rows++)
                NormRows(_x.AsSpan(r * e, e), _w.OutputNorm, _w.OutputNormBias, _hidden.AsSpan(rows * e, e));
            row += s.TokenCount;
        }
        if (rows == 0) return;
        _matMul.Multiply(_w.Output, _hidden.AsSpan(0, rows * e), rows, logits[..(rows * _c.VocabSize)]);
        if (_w.OutputBias is { } bias)
            for (int r = 0; r < rows; r++) FloatOps.Add(logits.Slice(r * _c.VocabSize, _c.VocabSize), bias);
        if (_c.LogitScale != 1f) FloatOps.Scale(logits[..(rows * _c.VocabSize)], 1f / _c.LogitScale);
        if (_c.FinalLogitSoftCap > 0) FloatOps.SoftCap(logits[..(rows * _c.VocabSize)], _c.FinalLogitSoftCap);
        ThrowIfNonFinite(logits[..(rows * _c.VocabSize)], _c.LayerCount);
    }

    // The steps between the matmuls act on each token's row alone, so they run as parallel-fors over the tokens: at
    // 16 decoding sequences they were ~7% of a step on the calling thread while the other threads waited. A row's
    // arithmetic is the same whichever thread runs it and however many rows share the step.

    /// <summary>
    /// to[t] = RMSNorm(from[t]) x weight (from _x to _xb, or a block's output in place), <see cref="RowsPerItem"/> rows
    /// an item: a row's sum of squares is a chain of double adds whose order fixes its bits, and
    /// <see cref="FloatOps.RmsNormRows"/> runs four rows' chains side by side (at 16 decoding sequences a norm took 12 µs
    /// of a layer, one row after another).
    /// </summary>
    private readonly struct NormRowsWork(ForwardPass owner, float[] from, float[] weight, int rows, float[] to, float[]? bias = null) : IParallelWork
    {
        private const int RowsPerItem = 4;

        public static int Items(int rows) => (rows + RowsPerItem - 1) / RowsPerItem;

        public void Execute(int item)
        {
            int e = owner._c.EmbeddingDim, first = item * RowsPerItem, count = Math.Min(RowsPerItem, rows - first);
            owner.NormRows(from.AsSpan(first * e, count * e), weight, bias, to.AsSpan(first * e, count * e));
        }
    }

    /// <summary>The model's norm of whole rows: RMSNorm, or LayerNorm with <paramref name="bias"/> (<see cref="ModelConfig.LayerNorm"/>).</summary>
    private void NormRows(ReadOnlySpan<float> from, float[] weight, float[]? bias, Span<float> to)
    {
        if (_c.LayerNorm) FloatOps.LayerNormRows(from, _c.EmbeddingDim, weight, bias, _c.RmsNormEps, to);
        else FloatOps.RmsNormRows(from, _c.EmbeddingDim, weight, _c.RmsNormEps, to);
    }

    /// <summary>Token t's q/k/v biases and rotary positions, then its keys and values appended to its sequence's cache.</summary>
    private readonly struct PositionRowsWork(ForwardPass owner, int layer) : IParallelWork
    {
        public void Execute(int t) => owner.PositionRow(layer, t);
    }

    private void PositionRow(int l, int t)
    {
        int qd = _c.QueryDim, kvd = _c.KvDim, half = _rope.Dims / 2;
        var layer = _w.Layers[l];
        var q = _q.AsSpan(t * qd, qd);
        var k = _k.AsSpan(t * kvd, kvd);
        var v = _v.AsSpan(t * kvd, kvd);
        if (layer.QueryBias != null) FloatOps.Add(q, layer.QueryBias);
        if (layer.KeyBias != null) FloatOps.Add(k, layer.KeyBias);
        if (layer.ValueBias != null) FloatOps.Add(v, layer.ValueBias);
        // qwen3: every head of q and k RMS-normalised on its own, before the rotation.
        if (layer.QueryNorm != null) NormHeads(q, layer.QueryNorm);
        if (layer.KeyNorm != null) NormHeads(k, layer.KeyNorm);
        bool local = _localRope != null && _c.LayerWindow(l) > 0;
        var cos = (local ? _localCos : _cos).AsSpan(t * half, half);
        var sin = (local ? _localSin : _sin).AsSpan(t * half, half);
        if (_c.RotatesLayer(l))
        {
            _rope.Apply(q, _c.HeadDim, cos, sin);
            _rope.Apply(k, _c.HeadDim, cos, sin);
        }
        // Rows of one sequence go to distinct positions of blocks reserved before the step: no two writes overlap.
        _rowStore[t].Write(l, _rowPosition[t], k, v);
    }

    private void NormHeads(Span<float> heads, float[] weight)
    {
        // OLMo 2 normalises the whole vector (one "head" as wide as all of them).
        int hd = _c.QkNormOverWhole ? heads.Length : _c.HeadDim;
        for (int at = 0; at < heads.Length; at += hd)
            FloatOps.RmsNorm(heads.Slice(at, hd), weight, _c.RmsNormEps, heads.Slice(at, hd));
    }

    /// <summary>gate[t] = SiLU(gate[t]) x up[t], or GELU(gate[t]) x up[t] for gemma.</summary>
    /// <summary>Row t's feed-forward activation, biases added first: gate = act(gate) x up, or for an ungated one up = act(up).</summary>
    private readonly struct ActivationRowsWork(ForwardPass owner, LayerWeights layer) : IParallelWork
    {
        public void Execute(int t)
        {
            int f = owner._c.FeedForwardDim;
            var up = owner._up.AsSpan(t * f, f);
            if (layer.UpBias != null) FloatOps.Add(up, layer.UpBias);
            if (layer.GateBias != null) FloatOps.Add(owner._gate.AsSpan(t * f, f), layer.GateBias);
            if (layer.IsGated) owner._c.Activation.Apply(owner._gate.AsSpan(t * f, f), up);
            else owner._c.Activation.Apply(up);
        }
    }
}
