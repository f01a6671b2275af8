namespace KvSharp.Sampling;

/// <summary>
/// Picks the next token: penalties, then greedy or temperature + top-k + top-p + min-p sampling with a seeded
/// generator. Buffers are allocated once per vocabulary size; sampling a token allocates nothing.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly int _vocab;
    private readonly int[] _order;
    private readonly float[] _probs;
    private readonly Dictionary<int, int> _counts = [];
    private ulong _state;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _options = options;
        _vocab = vocabSize;
        _order = new int[vocabSize];
        _probs = new float[vocabSize];
        _state = options.Seed ^ 0x9E3779B97F4A7C15UL;
        if (_state == 0) _state = 1;
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Chooses a token. <paramref name="logits"/> is modified (penalties, temperature).</summary>
    /// <param name="history">Tokens so far (prompt and generated), for the penalties.</param>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (logits.Length != _vocab) throw new ArgumentException($"expected {_vocab} logits, got {logits.Length}", nameof(logits));
        ApplyPenalties(logits, history);
        if (_options.Temperature == 0) return ArgMax(logits);

        // Softmax at the temperature, over tokens sorted by logit (ties: lower id first, for determinism).
        for (int i = 0; i < _vocab; i++) _order[i] = i;
        var order = _order.AsSpan();
        int candidates = _vocab;
        if (_options.TopK > 0 && _options.TopK < _vocab)
        {
            PartialSortDescending(logits, order, _options.TopK);
            candidates = _options.TopK;
        }
        else
        {
            // Full sort by descending logit: sort negated copies as keys (deterministic for the same input).
            var keys = _probs.AsSpan();
            for (int i = 0; i < _vocab; i++) keys[i] = -logits[i];
            keys.Sort(order);
        }

        float max = logits[order[0]];
        double sum = 0;
        for (int i = 0; i < candidates; i++)
        {
            float p = MathF.Exp((logits[order[i]] - max) / _options.Temperature);
            _probs[i] = p;
            sum += p;
        }
        for (int i = 0; i < candidates; i++) _probs[i] = (float)(_probs[i] / sum);

        if (_options.MinP > 0)
        {
            float threshold = _options.MinP * _probs[0];
            int keep = 1;
            while (keep < candidates && _probs[keep] >= threshold) keep++;
            candidates = keep;
        }
        if (_options.TopP < 1)
        {
            double cumulative = 0;
            int keep = 0;
            while (keep < candidates)
            {
                cumulative += _probs[keep++];
                if (cumulative >= _options.TopP) break;
            }
            candidates = keep;
        }

        double total = 0;
        for (int i = 0; i < candidates; i++) total += _probs[i];
        double r = NextDouble() * total;
        for (int i = 0; i < candidates; i++)
        {
            r -= _probs[i];
            if (r < 0) return order[i];
        }
        return order[candidates - 1];
    }

    private void ApplyPenalties(Span<float> logits, ReadOnlySpan<int> history)
    {
        var o = _options;
        if (o.RepetitionPenalty == 1f && o.PresencePenalty == 0f && o.FrequencyPenalty == 0f) return;
        var window = history.Length > o.PenaltyWindow ? history[^o.PenaltyWindow..] : history;
        _counts.Clear();
        foreach (int t in window)
            if ((uint)t < (uint)_vocab) _counts[t] = _counts.GetValueOrDefault(t) + 1;
        foreach (var (token, count) in _counts)
        {
            ref float l = ref logits[token];
            // As llama.cpp: shrink positive logits, push negative ones further down.
            l = l > 0 ? l / o.RepetitionPenalty : l * o.RepetitionPenalty;
            l -= o.PresencePenalty + count * o.FrequencyPenalty;
        }
    }

    private static int Compare(ReadOnlySpan<float> logits, int a, int b)
    {
        int c = logits[b].CompareTo(logits[a]);
        return c != 0 ? c : a.CompareTo(b);
    }

    /// <summary>Moves the k largest to the front, sorted (selection by a bounded insertion pass: k is small).</summary>
    private static void PartialSortDescending(ReadOnlySpan<float> logits, Span<int> order, int k)
    {
        int filled = 0;
        for (int i = 0; i < order.Length; i++)
        {
            int id = order[i];
            if (filled == k && Compare(logits, id, order[k - 1]) >= 0) continue;
            int pos = filled < k ? filled++ : k - 1;
            while (pos > 0 && Compare(logits, id, order[pos - 1]) < 0)
            {
                order[pos] = order[pos - 1];
                pos--;
            }
            order[pos] = id;
        }
    }

    /// <summary>xorshift64*: small, fast, and the same sequence on every platform for a seed.</summary>
    private double NextDouble()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        ulong r = _state * 0x2545F4914F6CDD1DUL;
        return (r >> 11) * (1.0 / (1UL << 53));
    }
}
