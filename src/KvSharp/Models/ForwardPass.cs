using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// The transformer forward pass (llama / qwen2) over a batch of consecutive tokens of one sequence, reading and
/// appending to that sequence's <see cref="KvCache"/>. Prefill passes many tokens, decode passes one; both run the
/// same code, and because every kernel is batch-invariant they produce bit-identical logits.
/// One ForwardPass owns scratch buffers sized for <see cref="MaxBatch"/> tokens and is not thread-safe.
/// </summary>
public sealed class ForwardPass
{
    private readonly ModelConfig _c;
    private readonly ModelWeights _w;
    private readonly MatMul _matMul;
    private readonly RotaryEmbedding _rope;
    private readonly float _attentionScale;

    // Activations for up to MaxBatch tokens, row-major [token][feature].
    private readonly float[] _x, _xb, _q, _k, _v, _attn, _proj, _gate, _up, _cos, _sin, _attnScratch, _lastHidden;

    public int MaxBatch { get; }

    public ForwardPass(ModelConfig config, ModelWeights weights, KernelPool pool, int maxBatch = 256)
    {
        _c = config;
        _w = weights;
        _matMul = new MatMul(pool);
        _rope = new RotaryEmbedding(config, weights.RopeFrequencyFactors);
        _attentionScale = 1f / MathF.Sqrt(config.HeadDim);
        MaxBatch = maxBatch;
        _x = new float[maxBatch * config.EmbeddingDim];
        _xb = new float[maxBatch * Math.Max(config.EmbeddingDim, config.QueryDim)];
        _q = new float[maxBatch * config.QueryDim];
        _k = new float[maxBatch * config.KvDim];
        _v = new float[maxBatch * config.KvDim];
        _attn = new float[maxBatch * config.QueryDim];
        _proj = new float[maxBatch * config.EmbeddingDim];
        _gate = new float[maxBatch * config.FeedForwardDim];
        _up = new float[maxBatch * config.FeedForwardDim];
        _cos = new float[maxBatch * config.RopeDimensions / 2];
        _sin = new float[maxBatch * config.RopeDimensions / 2];
        _attnScratch = new float[CausalAttention.ScratchLength(config.GroupSize)];
        _lastHidden = new float[maxBatch * config.EmbeddingDim];
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions cache.Length.. and appends their keys and values to the cache.
    /// Writes logits for every token ([tokens, vocab]) when <paramref name="allLogits"/>, else for the last token only.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool allLogits)
    {
        int vocab = _c.VocabSize;
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        int needed = allLogits ? tokens.Length * vocab : vocab;
        if (logits.Length < needed) throw new ArgumentException($"logits buffer holds {logits.Length} floats, need {needed}", nameof(logits));
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[i]} at index {i} is outside the vocabulary [0, {vocab})");
        if (cache.Length + tokens.Length > cache.MaxLength)
            throw new ContextOverflowException(cache.Length, tokens.Length, cache.MaxLength);

        for (int start = 0; start < tokens.Length; start += MaxBatch)
        {
            int n = Math.Min(MaxBatch, tokens.Length - start);
            bool last = start + n == tokens.Length;
            var chunkLogits = allLogits ? logits.Slice(start * vocab, n * vocab) : logits[..vocab];
            ForwardChunk(tokens.Slice(start, n), cache, chunkLogits, allLogits, computeLogits: allLogits || last);
        }
    }

    private void ForwardChunk(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool allLogits, bool computeLogits)
    {
        int n = tokens.Length, e = _c.EmbeddingDim, qd = _c.QueryDim, kvd = _c.KvDim, f = _c.FeedForwardDim;
        int start = cache.Length;
        cache.EnsureCapacity(start + n);

        var x = _x.AsSpan(0, n * e);
        var xb = _xb.AsSpan(0, n * e);
        var q = _q.AsSpan(0, n * qd);
        var k = _k.AsSpan(0, n * kvd);
        var v = _v.AsSpan(0, n * kvd);
        var attn = _attn.AsSpan(0, n * qd);
        var proj = _proj.AsSpan(0, n * e);
        var gate = _gate.AsSpan(0, n * f);
        var up = _up.AsSpan(0, n * f);

        // Embedding lookup: dequantize each token's row exactly (ggml get_rows).
        for (int t = 0; t < n; t++)
            Dequantize.Row(_w.TokenEmbedding.Type, _w.TokenEmbedding.Row(tokens[t]), x.Slice(t * e, e));

        int half = _rope.Dims / 2;
        for (int t = 0; t < n; t++)
            _rope.Angles(start + t, _cos.AsSpan(t * half, half), _sin.AsSpan(t * half, half));

        for (int l = 0; l < _c.LayerCount; l++)
        {
            var layer = _w.Layers[l];

            // Attention block: norm, q/k/v projections, rotary positions, append to the cache, attend over it.
            RmsNormRows(x, layer.AttentionNorm, xb, n, e);
            _matMul.Multiply(layer.Query, xb, n, q);
            _matMul.Multiply(layer.Key, xb, n, k);
            _matMul.Multiply(layer.Value, xb, n, v);
            if (layer.QueryBias != null) AddBiasRows(q, layer.QueryBias, n);
            if (layer.KeyBias != null) AddBiasRows(k, layer.KeyBias, n);
            if (layer.ValueBias != null) AddBiasRows(v, layer.ValueBias, n);
            for (int t = 0; t < n; t++)
            {
                var cos = _cos.AsSpan(t * half, half);
                var sin = _sin.AsSpan(t * half, half);
                _rope.Apply(q.Slice(t * qd, qd), _c.HeadDim, cos, sin);
                _rope.Apply(k.Slice(t * kvd, kvd), _c.HeadDim, cos, sin);
            }
            AppendToCache(cache, l, k, v, start, n);
            Attend(cache, l, q, attn, start, n);
            _matMul.Multiply(layer.AttentionOutput, attn, n, proj);
            FloatOps.Add(x, proj);

            // Feed-forward block: norm, SwiGLU, down projection, residual.
            RmsNormRows(x, layer.FeedForwardNorm, xb, n, e);
            _matMul.Multiply(layer.Gate, xb, n, gate);
            _matMul.Multiply(layer.Up, xb, n, up);
            // Row by row: a vector kernel's tail handling must not depend on how many tokens share the step.
            for (int t = 0; t < n; t++) FloatOps.SwiGlu(gate.Slice(t * f, f), up.Slice(t * f, f));
            _matMul.Multiply(layer.Down, gate, n, proj);
            FloatOps.Add(x, proj);
        }

        cache.Commit(start + n);
        if (!computeLogits) return;

        // Final norm and classifier, for every token or only the last.
        int first = allLogits ? 0 : n - 1, rows = n - first;
        var hidden = _lastHidden.AsSpan(0, rows * e);
        RmsNormRows(x[(first * e)..], _w.OutputNorm, hidden, rows, e);
        _matMul.Multiply(_w.Output, hidden, rows, logits[..(rows * _c.VocabSize)]);
    }

    private void AppendToCache(KvCache cache, int layer, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int start, int n)
    {
        int hd = _c.HeadDim, kvd = _c.KvDim;
        for (int h = 0; h < _c.KvHeadCount; h++)
        {
            var keys = cache.Keys(layer, h);
            var values = cache.Values(layer, h);
            for (int t = 0; t < n; t++)
            {
                k.Slice(t * kvd + h * hd, hd).CopyTo(keys.Slice((start + t) * hd, hd));
                v.Slice(t * kvd + h * hd, hd).CopyTo(values.Slice((start + t) * hd, hd));
            }
        }
    }

    private void Attend(KvCache cache, int layer, ReadOnlySpan<float> q, Span<float> output, int start, int n)
    {
        int hd = _c.HeadDim, qd = _c.QueryDim, group = _c.GroupSize, groupWidth = group * hd;
        for (int h = 0; h < _c.KvHeadCount; h++)
        {
            var keys = cache.Keys(layer, h);
            var values = cache.Values(layer, h);
            for (int t = 0; t < n; t++)
            {
                // Token t sees positions [0, start + t]: the causal mask.
                CausalAttention.AttendGroup(q.Slice(t * qd + h * groupWidth, groupWidth), keys, values, hd, group,
                    start + t + 1, _attentionScale, output.Slice(t * qd + h * groupWidth, groupWidth), _attnScratch);
            }
        }
    }

    private void RmsNormRows(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> dst, int rows, int width)
    {
        for (int t = 0; t < rows; t++)
            FloatOps.RmsNorm(x.Slice(t * width, width), weight, _c.RmsNormEps, dst.Slice(t * width, width));
    }

    private static void AddBiasRows(Span<float> x, ReadOnlySpan<float> bias, int rows)
    {
        for (int t = 0; t < rows; t++) FloatOps.Add(x.Slice(t * bias.Length, bias.Length), bias);
    }
}
