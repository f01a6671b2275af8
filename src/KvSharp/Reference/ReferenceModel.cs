using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Reference;

/// <summary>
/// The whole transformer (every architecture <see cref="ModelConfig"/> reads) written to be read: one token at a time,
/// plain loops, every sum in double.
/// Start here to learn what the model computes. <see cref="ForwardPass"/> computes the same thing fast (batches of
/// tokens from many sequences, SIMD kernels on the quantized weights, activations quantized as llama.cpp does, a
/// cache layer of its own); the tests hold it to this class.
/// The weights are dequantized to float once, at construction (4 bytes per parameter: meant for small models), and
/// the model keeps its own KV cache, so <see cref="Forward"/> continues the sequence until <see cref="Reset"/>.
/// </summary>
public sealed class ReferenceModel
{
    private readonly ModelConfig _c;
    private readonly float[] _ropeFactors;
    // YaRN: per pair, the share of its angle that stays the trained one (null without YaRN).
    private readonly float[]? _yarnMix;
    private readonly FloatMatrix _embedding, _output;
    private readonly FloatMatrix? _positions;
    private readonly float[] _outputNorm;
    private readonly float[]? _outputNormBias, _outputBias;
    private readonly ReferenceLayer[] _layers;
    // The KV cache: [layer][kv head] -> one row of HeadDim floats per position, keys and values apart.
    private readonly float[][][] _keys, _values;

    /// <summary>Tokens seen since the last <see cref="Reset"/>: the position of the next one.</summary>
    public int Position { get; private set; }

    /// <summary>The most tokens the cache holds.</summary>
    public int ContextLength { get; }

    /// <summary>
    /// Which positions each query attends to, and at which positions (<see cref="KvCachePolicy.KeptPositions"/>): the
    /// literal definition, for the caches' policies to be held to. Under a policy other than full the cache keeps keys
    /// before RoPE and every query rotates its kept keys at the positions the policy assigns them, itself at the last.
    /// </summary>
    public KvCachePolicy Policy { get; }

    /// <summary>The literal H2O or SnapKV under a score-based <see cref="Policy"/>, else null.</summary>
    public ScoredReference? Scored { get; }

    public ReferenceModel(ModelConfig config, ModelWeights weights, int? contextLength = null, KvCachePolicy? policy = null)
    {
        Policy = policy ?? KvCachePolicy.Full;
        _c = config;
        ContextLength = contextLength ?? config.TrainedContextLength;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ContextLength, nameof(contextLength));
        // Its independent check is llama.cpp's logits (ArchitectureParityTests), which compute the keys expanded per head.
        if (config.LatentAttention != null)
            throw new NotSupportedException($"the reference model does not run latent attention ({config.Architecture})");
        if (config.HasPerLayerPositions && !Policy.KeepsEverything)
            throw new NotSupportedException($"cache policy '{Policy}' does not apply to {config.Architecture}, whose layers differ in how positions enter them");
        if (Policy.EvictsByScore) Scored = new ScoredReference(config, Policy, ContextLength);
        _ropeFactors = weights.RopeFrequencyFactors ?? Enumerable.Repeat(1f, config.RopeDimensions / 2).ToArray();
        _yarnMix = config.Yarn?.ExtrapolationMix(config.RopeDimensions, config.RopeTheta);
        _embedding = FloatMatrix.From(weights.TokenEmbedding);
        _output = weights.TiedOutput ? _embedding : FloatMatrix.From(weights.Output);
        _outputNorm = weights.OutputNorm;
        _outputNormBias = weights.OutputNormBias;
        _outputBias = weights.OutputBias;
        _positions = weights.PositionEmbedding is { } table ? FloatMatrix.From(table) : null;
        if (_positions != null && ContextLength > _positions.Rows)
            throw new ArgumentOutOfRangeException(nameof(contextLength), ContextLength, $"the model learned position embeddings for {_positions.Rows} positions only");
        _layers = weights.Layers.Select(ReferenceLayer.From).ToArray();
        _keys = new float[config.LayerCount][][];
        _values = new float[config.LayerCount][][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _keys[l] = new float[config.KvHeadCount][];
            _values[l] = new float[config.KvHeadCount][];
            for (int h = 0; h < config.KvHeadCount; h++)
            {
                _keys[l][h] = new float[ContextLength * config.HeadDim];
                _values[l][h] = new float[ContextLength * config.HeadDim];
            }
        }
    }

    /// <summary>Starts a new sequence. Old rows stay in the arrays but are never read: attention stops at Position.</summary>
    public void Reset()
    {
        Position = 0;
        Scored?.Reset();
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> as one prefill (a multi-token forward: SnapKV compresses after it) and returns
    /// each token's next-token logits. <see cref="Forward"/> alone is a one-token step.
    /// </summary>
    public float[][] Prefill(IReadOnlyList<int> tokens)
    {
        Scored?.BeginPrefill(Position, tokens.Count);
        var logits = tokens.Select(Forward).ToArray();
        Scored?.EndPrefill(_keys);
        Scored?.BeginPrefill(Position, 0);
        return logits;
    }

    /// <summary>Runs <paramref name="token"/> at <see cref="Position"/>, caches its keys and values, returns the next-token logits.</summary>
    public float[] Forward(int token)
    {
        if ((uint)token >= (uint)_c.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary [0, {_c.VocabSize})");
        if (Position == ContextLength)
            throw new InvalidOperationException($"the reference model's cache is full ({ContextLength} positions); call Reset");
        int pos = Position, hd = _c.HeadDim;

        // The residual stream: every block reads a normalised copy of it and adds its result back.
        float[] x = _embedding.Row(token).ToArray();
        // Gemma scales the embedding up by sqrt(width), so the stream starts at the size its norms expect.
        for (int i = 0; i < x.Length; i++) x[i] *= _c.EmbeddingScale;
        // gpt2 learned an embedding per position and adds it: position enters here, and nowhere else.
        if (_positions != null)
        {
            var position = _positions.Row(pos);
            for (int i = 0; i < x.Length; i++) x[i] += position[i];
        }
        for (int l = 0; l < _c.LayerCount; l++)
        {
            var w = _layers[l];

            // Attention. Queries, keys and values are projections of the normalised stream (qwen2 adds biases).
            // OLMo 2 has no norms before its blocks (it normalises their outputs): they read the stream as it is.
            float[] xb = w.AttentionNorm == null ? x.ToArray() : Norm(x, w.AttentionNorm, w.AttentionNormBias);
            // phi2's and GPT-NeoX's feed-forward runs in parallel: it reads the stream before the attention's output
            // joins it (phi2 this same normalised copy, GPT-NeoX a copy normalised by its own norm).
            float[] attentionInput = xb;
            float[]? before = _c.ParallelFeedForward ? x.ToArray() : null;
            float[] q = MatVec(w.Query, xb, w.QueryBias);
            float[] k = MatVec(w.Key, xb, w.KeyBias);
            float[] v = MatVec(w.Value, xb, w.ValueBias);
            // qwen3 normalises each head of q and k on its own (a head's size no longer depends on the projection's scale).
            if (w.QueryNorm != null) NormHeads(q, w.QueryNorm);
            if (w.KeyNorm != null) NormHeads(k, w.KeyNorm);
            // Position enters only here, by rotating q and k: their dot product then depends on the distance.
            // A policy's reference attends over the kept positions at the positions it assigns; full keeps the plain path.
            if (Policy.Window != null) AttendKept(l, q, k, v, pos, x);
            else
            {
                // SmolLM3's every fourth layer is NoPE: position enters only through the other layers.
                if (_c.RotatesLayer(l))
                {
                    Rope(q, pos, l);
                    Rope(k, pos, l);
                }
                for (int h = 0; h < _c.KvHeadCount; h++)
                {
                    Array.Copy(k, h * hd, _keys[l][h], pos * hd, hd);
                    Array.Copy(v, h * hd, _values[l][h], pos * hd, hd);
                }
                // Each query head attends over positions 0..pos of its KV head (a local layer of Gemma 2/3: the last
                // Window of them). With grouped-query attention (GQA) a run of GroupSize consecutive query heads shares
                // one KV head, which is what shrinks the cache.
                int window = _c.LayerWindow(l), from = window > 0 ? Math.Max(0, pos + 1 - window) : 0;
                var attention = new float[_c.QueryDim];
                if (Scored != null) Scored.Attend(l, q, _keys[l], _values[l], pos, attention);
                else for (int h = 0; h < _c.HeadCount; h++)
                {
                    int kvHead = h / _c.GroupSize;
                    ReferenceAttention.Attend(q.AsSpan(h * hd, hd), _keys[l][kvHead].AsSpan(from * hd), _values[l][kvHead].AsSpan(from * hd),
                        pos + 1 - from, _c.AttentionScale, attention.AsSpan(h * hd, hd), _c.AttentionSoftCap, w.SinkLogits?[h]);
                }
                Add(x, Residual(PostNorm(MatVec(w.AttentionOutput, attention, w.OutputBias), w.AttentionPostNorm)));
            }

            // Feed-forward, SwiGLU: down(silu(gate(x)) * up(x)); gemma's GeGLU: down(gelu(gate(x)) * up(x)); phi2,
            // starcoder2 and gpt2's: down(gelu(up(x) + b) + b'); a mixture of experts: the router's favourite experts'
            // outputs, weighted by its probabilities.
            xb = _c.ParallelFeedForward && w.FeedForwardNorm == null ? attentionInput
                : w.FeedForwardNorm == null ? x.ToArray() : Norm(before ?? x, w.FeedForwardNorm, w.FeedForwardNormBias);
            float[] ffn = w.Experts is { } moe ? Experts(moe, xb)
                : w.Gate == null ? MatVec(w.Down!, Activated(MatVec(w.Up!, xb, w.UpBias)), w.DownBias)
                : FeedForward(w.Gate, w.Up!, w.Down!, xb, w.GateBias, w.UpBias, w.DownBias);
            Add(x, Residual(PostNorm(ffn, w.FeedForwardPostNorm)));
        }

        Position++;
        var logits = MatVec(_output, Norm(x, _outputNorm, _outputNormBias), _outputBias);
        // Granite divides its logits by logit_scale.
        for (int i = 0; i < logits.Length; i++) logits[i] *= 1f / _c.LogitScale;
        // Gemma 2 squashes the logits into (-cap, cap).
        if (_c.FinalLogitSoftCap > 0)
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(_c.FinalLogitSoftCap * Math.Tanh(logits[i] / _c.FinalLogitSoftCap));
        return logits;
    }

    private float[] FeedForward(FloatMatrix gateMatrix, FloatMatrix upMatrix, FloatMatrix down, float[] xb,
        float[]? gateBias = null, float[]? upBias = null, float[]? downBias = null)
    {
        float[] gate = MatVec(gateMatrix, xb, gateBias), up = MatVec(upMatrix, xb, upBias);
        for (int i = 0; i < gate.Length; i++)
            gate[i] = _c.Activation switch
            {
                FeedForwardActivation.GeluTanh => Gelu.Of(gate[i]) * up[i],
                // gpt-oss: the gate clamped from above, up from both sides, and up shifted by one.
                FeedForwardActivation.SwiGluClamped => (float)ClampedSwiGlu(gate[i], up[i]),
                _ => (float)(Silu(gate[i]) * up[i]),
            };
        return MatVec(down, gate, downBias);
    }

    /// <summary>
    /// A mixture of experts: softmax over the router's logits, the ExpertsUsed most probable experts (the lower index
    /// on a tie), their probabilities (divided by their sum if the model normalises them), and the sum of each chosen
    /// expert's feed-forward times its weight.
    /// </summary>
    private float[] Experts(ReferenceExperts moe, float[] xb)
    {
        float[] logits = MatVec(moe.Router, xb, moe.RouterBias);
        double max = logits.Max();
        double[] p = logits.Select(l => Math.Exp(l - max)).ToArray();
        double total = p.Sum();
        var chosen = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ThenBy(i => i).Take(_c.ExpertsUsed).ToArray();
        // gpt-oss weights the chosen experts by a softmax over their logits alone: p renormalised over them.
        bool ofChosen = _c.ExpertGating == ExpertGating.SoftmaxOfChosen;
        double norm = _c.NormalizeExpertWeights || ofChosen ? chosen.Sum(i => p[i] / total) : 1;
        var y = new float[_c.EmbeddingDim];
        foreach (int i in chosen)
        {
            double weight = p[i] / total / norm;
            float[] expert = FeedForward(moe.Gate[i], moe.Up[i], moe.Down[i], xb, moe.Biases?.Gate[i], moe.Biases?.Up[i], moe.Biases?.Down[i]);
            for (int j = 0; j < y.Length; j++) y[j] += (float)(weight * expert[j]);
        }
        // Qwen2-MoE: a shared expert every token runs through, weighted by the sigmoid of its own router row.
        if (moe.Shared is [var router, var gate, var up, var down])
        {
            double g = MatVec(router, xb)[0], share = 1 / (1 + Math.Exp(-g));
            float[] shared = FeedForward(gate, up, down, xb);
            for (int j = 0; j < y.Length; j++) y[j] += (float)(share * shared[j]);
        }
        return y;
    }

    /// <summary>Granite scales each block's output by residual_scale before adding it to the stream.</summary>
    private float[] Residual(float[] y)
    {
        for (int i = 0; i < y.Length; i++) y[i] *= _c.ResidualScale;
        return y;
    }

    /// <summary>Gemma 2/3 normalise a block's output before adding it to the stream; other models add it as it is.</summary>
    private float[] PostNorm(float[] y, float[]? weight) => weight == null ? y : RmsNorm(y, weight);

    /// <summary>
    /// The attention block under <see cref="Policy"/>: stores k unrotated, then rotates q at the last assigned
    /// position and each kept key at its own, attends, and adds the projected result to <paramref name="x"/>.
    /// </summary>
    private void AttendKept(int l, float[] q, float[] k, float[] v, int pos, float[] x)
    {
        int hd = _c.HeadDim;
        for (int h = 0; h < _c.KvHeadCount; h++)
        {
            Array.Copy(k, h * hd, _keys[l][h], pos * hd, hd);
            Array.Copy(v, h * hd, _values[l][h], pos * hd, hd);
        }
        int[] kept = Policy.KeptPositions(pos);
        Rope(q, kept.Length - 1);
        var keys = new float[_c.KvHeadCount][];
        var values = new float[_c.KvHeadCount][];
        for (int h = 0; h < _c.KvHeadCount; h++)
        {
            keys[h] = new float[kept.Length * hd];
            values[h] = new float[kept.Length * hd];
            for (int i = 0; i < kept.Length; i++)
            {
                var key = _keys[l][h].AsSpan(kept[i] * hd, hd).ToArray();
                Rope(key, i);
                key.CopyTo(keys[h], i * hd);
                Array.Copy(_values[l][h], kept[i] * hd, values[h], i * hd, hd);
            }
        }
        var attention = new float[_c.QueryDim];
        for (int h = 0; h < _c.HeadCount; h++)
            ReferenceAttention.Attend(q.AsSpan(h * hd, hd), keys[h / _c.GroupSize], values[h / _c.GroupSize], kept.Length,
                _c.AttentionScale, attention.AsSpan(h * hd, hd), _c.AttentionSoftCap);
        Add(x, Residual(MatVec(_layers[l].AttentionOutput, attention, _layers[l].OutputBias)));
    }

    /// <summary>An ungated feed-forward's activation of every element (GELU for the architectures that have one).</summary>
    private float[] Activated(float[] up)
    {
        for (int i = 0; i < up.Length; i++) up[i] = _c.Activation == FeedForwardActivation.GeluTanh ? Gelu.Of(up[i]) : (float)Silu(up[i]);
        return up;
    }

    /// <summary>The model's norm: <see cref="RmsNorm"/>, or for <see cref="ModelConfig.LayerNorm"/> models <see cref="LayerNorm"/>.</summary>
    private float[] Norm(float[] x, float[] weight, float[]? bias) => _c.LayerNorm ? LayerNorm(x, weight, bias) : RmsNorm(x, weight);

    /// <summary>
    /// (x - mean(x)) / sqrt(variance(x) + eps) x weight + bias: centres the stream, rescales it to unit size, then per
    /// feature (LayerNorm, the norm of phi2, starcoder2, gpt2 and stablelm).
    /// </summary>
    private float[] LayerNorm(float[] x, float[] weight, float[]? bias)
    {
        double mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        double squares = 0;
        foreach (float v in x) squares += (v - mean) * (v - mean);
        double scale = 1 / Math.Sqrt(squares / x.Length + _c.RmsNormEps);
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = (float)((x[i] - mean) * scale * weight[i] + (bias?[i] ?? 0));
        return y;
    }

    /// <summary>x / sqrt(mean(x²) + eps) x weight: rescales the stream to unit size, then per feature.</summary>
    private float[] RmsNorm(float[] x, float[] weight)
    {
        double squares = 0;
        foreach (float v in x) squares += (double)v * v;
        double scale = 1 / Math.Sqrt(squares / x.Length + _c.RmsNormEps);
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = (float)(x[i] * scale * weight[i]);
        return y;
    }

    private void NormHeads(float[] heads, float[] weight)
    {
        int hd = _c.QkNormOverWhole ? heads.Length : _c.HeadDim;
        for (int at = 0; at < heads.Length; at += hd) RmsNorm(heads.AsSpan(at, hd).ToArray(), weight).CopyTo(heads, at);
    }

    /// <summary>W·x (+ bias): output r is the dot product of row r with x.</summary>
    private static float[] MatVec(FloatMatrix w, float[] x, float[]? bias = null)
    {
        var y = new float[w.Rows];
        for (int r = 0; r < w.Rows; r++)
        {
            var row = w.Row(r);
            double s = bias?[r] ?? 0;
            for (int c = 0; c < x.Length; c++) s += (double)row[c] * x[c];
            y[r] = (float)s;
        }
        return y;
    }

    /// <summary>
    /// Rotary position embedding: in every head, rotates pairs of dimensions by position x frequency. Pair i turns at
    /// base^(-2i/dims) radians per position (fast for the first pairs, slow for the last), divided by the model's
    /// per-pair factor (llama3-style rope_freqs) and scaled by the linear rope scaling (or YaRN's ramp between the
    /// scaled and the trained angle). Only the first
    /// RopeDimensions of a head rotate. llama pairs neighbours (2i, 2i+1); NeoX-style models (qwen2, qwen3, phi3)
    /// pair the halves (i, i + dims/2). LongRoPE models also scale both by their attention factor.
    /// </summary>
    private void Rope(float[] heads, int position, int layer = -1)
    {
        int hd = _c.HeadDim, dims = _c.RopeDimensions, half = dims / 2;
        bool neox = _c.RopeStyle == RopeStyle.NeoX;
        // Gemma 3's local layers turn with a base of their own, unscaled and without factors.
        bool local = layer >= 0 && _c.LocalRopeTheta != null && _c.LayerWindow(layer) > 0;
        double theta = local ? _c.LocalRopeTheta!.Value : _c.RopeTheta, frequencyScale = local ? 1 : _c.RopeFrequencyScale;
        // YaRN keeps a share of each pair's trained angle (its ramp, which is exact in float) and grows every rotation
        // by 1 + 0.1 ln(factor); the attention factor multiplies it too.
        var mix = local ? null : _yarnMix;
        double magnitude = local ? 1 : _c.RopeAttentionFactor * (_c.Yarn is { ExtrapolationFactor: not 0 } ? 1 + 0.1 * Math.Log(1 / frequencyScale) : 1);
        for (int i = 0; i < half; i++)
        {
            double extrapolated = position * Math.Pow(theta, -2.0 * i / dims) / (local ? 1 : _ropeFactors[i]);
            double share = mix?[i] ?? 0, angle = frequencyScale * extrapolated * (1 - share) + extrapolated * share;
            double cos = Math.Cos(angle) * magnitude, sin = Math.Sin(angle) * magnitude;
            for (int h = 0; h < heads.Length / hd; h++)
            {
                int a = h * hd + (neox ? i : 2 * i), b = a + (neox ? half : 1);
                double x0 = heads[a], x1 = heads[b];
                heads[a] = (float)(x0 * cos - x1 * sin);
                heads[b] = (float)(x0 * sin + x1 * cos);
            }
        }
    }

    /// <summary>SiLU, the gate's activation: x · sigmoid(x).</summary>
    private static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>OpenAI's SwiGLU (gpt-oss): min(gate, limit) x sigmoid(alpha x that) x (clamp(up, ±limit) + 1).</summary>
    private static double ClampedSwiGlu(double gate, double up)
    {
        double x = Math.Min(gate, FeedForwardActivations.SwiGluLimit);
        double g = Math.Clamp(up, -FeedForwardActivations.SwiGluLimit, FeedForwardActivations.SwiGluLimit);
        return x / (1 + Math.Exp(-FeedForwardActivations.SwiGluAlpha * x)) * (g + 1);
    }

    /// <summary>The residual connection: x += y.</summary>
    private static void Add(float[] x, float[] y)
    {
        for (int i = 0; i < x.Length; i++) x[i] += y[i];
    }
}
