using KvSharp.Tensors;

namespace KvSharp.Models;

/// <summary>
/// The mixture-of-experts feed-forward of a batch of rows, as llama.cpp's llm_build_moe_ffn computes it: the router's
/// logits (plus its bias: gpt-oss), their softmax (a sigmoid: DeepSeek V3; none before the choice: gpt-oss), the
/// <see cref="ModelConfig.ExpertsUsed"/> most probable experts (ties to the lower index), their probabilities (divided
/// by their sum where <see cref="ModelConfig.NormalizeExpertWeights"/>; gpt-oss: a softmax over the chosen logits),
/// each chosen expert's SwiGLU of the row (with the expert's biases: gpt-oss), and the weighted outputs added in the
/// order the experts were chosen.
/// Rows are grouped by expert so each expert multiplies all the rows that chose it at once; the product kernels give a
/// row the same bits however many rows share the call, so a token's output does not depend on its batch.
/// Owns scratch for up to maxBatch rows; not thread-safe (one per <see cref="ForwardPass"/>).
/// </summary>
internal sealed class ExpertFeedForward
{
    private readonly ModelConfig _c;
    private readonly MatMul _matMul;
    private readonly int _maxBatch;
    // Per row: router logits then probabilities [row][expert]; chosen experts and their weights [row][slot].
    private readonly float[] _probabilities, _weights;
    private readonly int[] _chosen;
    // Per expert: the rows that chose it and in which slot, as row x slots + slot.
    private readonly int[][] _rowsOf;
    private readonly int[] _rowCount;
    // The rows an expert serves gathered together, its gate and up products, its output, and every row's slot outputs.
    private readonly float[] _gathered, _gate, _up, _down, _slots;
    // The shared expert's gate logit per row, and its gate and up products (Qwen2-MoE).
    private readonly float[] _sharedLogit, _sharedGate, _sharedUp;

    public ExpertFeedForward(ModelConfig config, MatMul matMul, int maxBatch)
    {
        _c = config;
        _matMul = matMul;
        _maxBatch = maxBatch;
        int n = config.ExpertCount, k = config.ExpertsUsed, e = config.EmbeddingDim, f = config.ExpertFeedForwardDim;
        _probabilities = new float[maxBatch * n];
        _weights = new float[maxBatch * k];
        _chosen = new int[maxBatch * k];
        _rowsOf = new int[n][];
        for (int x = 0; x < n; x++) _rowsOf[x] = new int[maxBatch];
        _rowCount = new int[n];
        _gathered = new float[maxBatch * e];
        _gate = new float[maxBatch * f];
        _up = new float[maxBatch * f];
        _down = new float[maxBatch * e];
        _slots = new float[maxBatch * k * e];
        int fs = config.SharedExpertFeedForwardDim;
        _sharedLogit = new float[fs > 0 ? maxBatch : 0];
        _sharedGate = new float[maxBatch * fs];
        _sharedUp = new float[maxBatch * fs];
    }

    /// <summary>output[t] = Σ over row t's chosen experts, in choice order, of weight x expert(input[t]).</summary>
    public void Run(MixtureOfExperts moe, ReadOnlySpan<float> input, int rows, Span<float> output)
    {
        int n = _c.ExpertCount, k = _c.ExpertsUsed, e = _c.EmbeddingDim, f = _c.ExpertFeedForwardDim;
        if (rows > _maxBatch) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"at most {_maxBatch} rows");
        _matMul.Multiply(moe.Router, input[..(rows * e)], rows, _probabilities.AsSpan(0, rows * n));
        Array.Clear(_rowCount);
        for (int t = 0; t < rows; t++)
        {
            var p = _probabilities.AsSpan(t * n, n);
            if (moe.RouterBias != null) FloatOps.Add(p, moe.RouterBias);
            if (_c.ExpertGating == ExpertGating.Sigmoid) Sigmoid(p);
            else if (_c.ExpertGating == ExpertGating.Softmax) Softmax(p);
            Choose(p, moe.SelectionBias, _chosen.AsSpan(t * k, k), _weights.AsSpan(t * k, k));
            for (int slot = 0; slot < k; slot++)
            {
                int x = _chosen[t * k + slot];
                _rowsOf[x][_rowCount[x]++] = t * k + slot;
            }
        }

        // Each expert once, over every row that chose it.
        for (int x = 0; x < n; x++)
        {
            int m = _rowCount[x];
            if (m == 0) continue;
            for (int i = 0; i < m; i++) input.Slice(_rowsOf[x][i] / k * e, e).CopyTo(_gathered.AsSpan(i * e, e));
            _matMul.Multiply(moe.Gate[x], _gate.AsSpan(0, m * f), moe.Up[x], _up.AsSpan(0, m * f), _gathered.AsSpan(0, m * e), m);
            var biases = moe.Biases;
            for (int i = 0; i < m; i++)
            {
                if (biases != null)
                {
                    FloatOps.Add(_gate.AsSpan(i * f, f), biases.Gate[x]);
                    FloatOps.Add(_up.AsSpan(i * f, f), biases.Up[x]);
                }
                _c.Activation.Apply(_gate.AsSpan(i * f, f), _up.AsSpan(i * f, f));
            }
            _matMul.Multiply(moe.Down[x], _gate.AsSpan(0, m * f), m, _down.AsSpan(0, m * e));
            for (int i = 0; i < m; i++)
            {
                if (biases != null) FloatOps.Add(_down.AsSpan(i * e, e), biases.Down[x]);
                _down.AsSpan(i * e, e).CopyTo(_slots.AsSpan(_rowsOf[x][i] * e, e));
            }
        }

        // Weighted, then added in choice order (ggml_mul, then a chain of ggml_add).
        for (int t = 0; t < rows; t++)
        {
            var o = output.Slice(t * e, e);
            for (int slot = 0; slot < k; slot++)
            {
                var y = _slots.AsSpan((t * k + slot) * e, e);
                FloatOps.Scale(y, _weights[t * k + slot]);
                if (slot == 0) y.CopyTo(o);
                else FloatOps.Add(o, y);
            }
        }
        if (moe.Shared is { } shared) AddShared(shared, input, rows, output);
    }

    /// <summary>
    /// output[t] += SwiGLU_shared(input[t]) x sigmoid(router · input[t]), the sigmoid as llama.cpp's qwen2moe takes it
    /// (silu(g) / g) and the SwiGLU through its own down projection (into the gathered-rows buffer, free by now);
    /// DeepSeek's shared experts are added ungated.
    /// </summary>
    private void AddShared(SharedExpert shared, ReadOnlySpan<float> input, int rows, Span<float> output)
    {
        int e = _c.EmbeddingDim, fs = _c.SharedExpertFeedForwardDim;
        bool gated = _c.SharedExpertGated;
        if (gated) _matMul.Multiply(shared.Router, input[..(rows * e)], rows, _sharedLogit.AsSpan(0, rows));
        _matMul.Multiply(shared.Gate, _sharedGate.AsSpan(0, rows * fs), shared.Up, _sharedUp.AsSpan(0, rows * fs), input[..(rows * e)], rows);
        for (int t = 0; t < rows; t++) _c.Activation.Apply(_sharedGate.AsSpan(t * fs, fs), _sharedUp.AsSpan(t * fs, fs));
        _matMul.Multiply(shared.Down, _sharedGate.AsSpan(0, rows * fs), rows, _gathered.AsSpan(0, rows * e));
        for (int t = 0; t < rows; t++)
        {
            var y = _gathered.AsSpan(t * e, e);
            if (gated)
            {
                float g = _sharedLogit[t], gate = g / (1f + MathF.Exp(-g)) / g;
                FloatOps.Scale(y, gate);
            }
            FloatOps.Add(output.Slice(t * e, e), y);
        }
    }

    /// <summary>p = softmax(p) as ggml_soft_max: exp(x - max) summed in double, then times 1/sum.</summary>
    private static void Softmax(Span<float> p)
    {
        float max = float.NegativeInfinity;
        foreach (float v in p) max = MathF.Max(max, v);
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = MathF.Exp(p[i] - max);
        float scale = (float)(1.0 / sum);
        for (int i = 0; i < p.Length; i++) p[i] *= scale;
    }

    /// <summary>p = sigmoid(p), each on its own (ggml_sigmoid: 1 / (1 + exp(-x))).</summary>
    private static void Sigmoid(Span<float> p)
    {
        for (int i = 0; i < p.Length; i++) p[i] = 1f / (1f + MathF.Exp(-p[i]));
    }

    /// <summary>
    /// The k most probable experts (by probability plus the selection bias, where the model has one: DeepSeek V3), most
    /// probable first (ggml_top_k: a descending sort in which ties keep the lower index first), and their probabilities
    /// without the bias, divided by their sum (summed in double, as ggml_sum_rows) when the model normalises them, then
    /// times the model's expert weight scale.
    /// </summary>
    private void Choose(ReadOnlySpan<float> p, float[]? bias, Span<int> chosen, Span<float> weights)
    {
        for (int slot = 0; slot < chosen.Length; slot++)
        {
            int best = -1;
            float bestScore = 0;
            for (int x = 0; x < p.Length; x++)
            {
                if (chosen[..slot].Contains(x)) continue;
                float score = bias == null ? p[x] : p[x] + bias[x];
                if (best < 0 || score > bestScore) (best, bestScore) = (x, score);
            }
            chosen[slot] = best;
            weights[slot] = p[best];
        }
        // gpt-oss: p holds logits, and the chosen ones' softmax weights them.
        if (_c.ExpertGating == ExpertGating.SoftmaxOfChosen) Softmax(weights);
        if (_c.NormalizeExpertWeights)
        {
            double sum = 0;
            foreach (float w in weights) sum += w;
            float total = (float)sum;
            for (int slot = 0; slot < weights.Length; slot++) weights[slot] /= total;
        }
        if (_c.ExpertWeightsScale != 1f)
            for (int slot = 0; slot < weights.Length; slot++) weights[slot] *= _c.ExpertWeightsScale;
    }
}
