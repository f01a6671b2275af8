using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
    private readonly int[] _biasTokens;
    private readonly float[] _biases;
    private ulong _state;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _options = options;
        _vocab = vocabSize;
        // The bias as two arrays, so applying it per token allocates nothing and runs in id order whatever the dictionary's.
        var bias = options.LogitBias ?? new Dictionary<int, float>();
        _biasTokens = [.. bias.Keys.Order()];
        _biases = [.. _biasTokens.Select(t => bias[t])];
        CheckVocabulary(options, vocabSize);
        _order = new int[vocabSize];
        _probs = new float[vocabSize];
        _state = options.Seed ^ 0x9E3779B97F4A7C15UL;
        if (_state == 0) _state = 1;
    }

    /// <summary>
    /// Refuses options that name tokens a vocabulary of <paramref name="vocabSize"/> does not have, or rule out all of
    /// it (<see cref="SamplingOptions.LogitBias"/>); the engine runs this when a request is submitted.
    /// </summary>
    public static void CheckVocabulary(SamplingOptions options, int vocabSize)
    {
        if (options.LogitBias is not { Count: > 0 } bias) return;
        int banned = 0;
        foreach (var (token, value) in bias)
        {
            if (token >= vocabSize)
                throw new ArgumentException($"logit bias names token {token}, but the model's vocabulary has {vocabSize} tokens (ids 0 to {vocabSize - 1})", nameof(options));
            if (float.IsNegativeInfinity(value)) banned++;
        }
        if (banned == vocabSize)
            throw new ArgumentException($"logit bias rules out all {vocabSize} tokens of the vocabulary: nothing could be generated", nameof(options));
    }

    /// <summary>
    /// The first index of the largest logit: the answer of <c>best = 0; if (l[i] &gt; l[best]) best = i</c> in index
    /// order, so ties go to the lower id, +0 and -0 tie, and a NaN never wins (unless it is l[0], which nothing
    /// beats). Greedy decoding of every sequence in an engine step runs this over the whole vocabulary on the
    /// stepping thread, so it goes eight lanes at a time: one pass for the largest value, one for where it first is.
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) return 0;
        if (!Avx.IsSupported || logits.Length < 2 * Vector256<float>.Count || float.IsNaN(logits[0]))
            return ArgMaxScalar(logits);
        ref float l = ref MemoryMarshal.GetReference(logits);
        int n = logits.Length, last = n - Vector256<float>.Count, i;
        // vmaxps(x, m) keeps m where x is NaN (or equal), so NaNs are skipped as the scalar loop skips them.
        Vector256<float> m = Vector256.Create(l);
        for (i = 0; i <= last; i += Vector256<float>.Count) m = Avx.Max(Vector256.LoadUnsafe(ref l, (nuint)i), m);
        float max = l;
        for (int lane = 0; lane < Vector256<float>.Count; lane++) max = m[lane] > max ? m[lane] : max;
        for (; i < n; i++) max = Unsafe.Add(ref l, i) > max ? Unsafe.Add(ref l, i) : max;
        // The first element equal to the largest: every earlier one is smaller (or NaN), as the scalar loop needs.
        var target = Vector256.Create(max);
        for (i = 0; i <= last; i += Vector256<float>.Count)
        {
            uint hits = Vector256.Equals(Vector256.LoadUnsafe(ref l, (nuint)i), target).ExtractMostSignificantBits();
            if (hits != 0) return i + BitOperations.TrailingZeroCount(hits);
        }
        for (; i < n; i++)
            if (Unsafe.Add(ref l, i) == max) return i;
        throw new InvalidOperationException("unreachable: the largest logit was found in the first pass");
    }

    /// <summary>The reference loop <see cref="ArgMax"/> must agree with.</summary>
    internal static int ArgMaxScalar(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Chooses a token. <paramref name="logits"/> is modified (logit bias, penalties).</summary>
    /// <param name="history">Tokens so far (prompt and generated), for the penalties.</param>
    /// <remarks>
    /// The filters run in llama.cpp's default order on the untempered distribution — top-k, top-p, min-p — and the
    /// temperature applies to the survivors. Only what a filter needs is sorted: with no top-k/top-p the candidates
    /// stay in id order, and top-p sorts a growing head of the distribution until it holds the mass p.
    /// </remarks>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (logits.Length != _vocab) throw new ArgumentException($"expected {_vocab} logits, got {logits.Length}", nameof(logits));
        for (int i = 0; i < _biasTokens.Length; i++) logits[_biasTokens[i]] += _biases[i];
        ApplyPenalties(logits, history);
        if (_options.Temperature == 0) return ArgMax(logits);

        var order = _order.AsSpan();
        float max = logits[ArgMax(logits)];
        // Probabilities at temperature 1, unnormalised (relative to the best token, which gets 1).
        double total = 0;
        for (int i = 0; i < _vocab; i++)
        {
            float p = MathF.Exp(logits[i] - max);
            _probs[i] = p;
            total += p;
        }

        int candidates;
        if (_options.TopK > 0 && _options.TopK < _vocab)
        {
            candidates = TopByLogit(logits, order, _options.TopK);
        }
        else if (_options.TopP < 1)
        {
            // Sort a head of 64, 256, 1024, ... tokens until it holds the mass p (or is the whole vocabulary).
            candidates = 0;
            for (int k = Math.Min(64, _vocab); ; k = Math.Min(k * 4, _vocab))
            {
                candidates = TopByLogit(logits, order, k);
                double mass = 0;
                for (int i = 0; i < candidates; i++) mass += _probs[order[i]];
                if (mass >= _options.TopP * total || k == _vocab) break;
            }
        }
        else
        {
            for (int i = 0; i < _vocab; i++) order[i] = i;
            candidates = _vocab;
        }

        if (_options.TopP < 1)
        {
            // order[0..candidates) is sorted here (top-k or the grown head).
            double cumulative = 0, target = _options.TopP * total;
            int keep = 0;
            while (keep < candidates)
            {
                cumulative += _probs[order[keep++]];
                if (cumulative >= target) break;
            }
            candidates = keep;
        }
        if (_options.MinP > 0)
        {
            // The best token has probability 1 / total here; keep those at least min_p of it.
            int keep = 0;
            for (int i = 0; i < candidates; i++)
                if (_probs[order[i]] >= _options.MinP) order[keep++] = order[i];
            candidates = keep;
        }

        // Temperature on the survivors, then one draw.
        double sum = 0;
        for (int i = 0; i < candidates; i++)
        {
            int id = order[i];
            double w = Math.Exp((logits[id] - max) / _options.Temperature);
            _probs[id] = (float)w;
            sum += w;
        }
        double r = NextDouble() * sum;
        int last = order[0];
        for (int i = 0; i < candidates; i++)
        {
            float w = _probs[order[i]];
            if (w > 0) last = order[i];
            r -= w;
            if (r < 0) return order[i];
        }
        // Rounding left r at or above 0: the last candidate that could be drawn, never one a ban (weight 0) ruled out.
        return last;
    }

    /// <summary>The k tokens with the highest logits, sorted (ties: lower id first), into order[0..k).</summary>
    private static int TopByLogit(ReadOnlySpan<float> logits, Span<int> order, int k)
    {
        for (int i = 0; i < order.Length; i++) order[i] = i;
        PartialSortDescending(logits, order, k);
        return k;
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
