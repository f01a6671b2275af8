namespace KvSharp.Evaluation;

/// <summary>
/// The statistics of next-token distributions given as logits, in double precision: log-likelihood of the actual
/// token, and the KL divergence between two distributions over the same vocabulary.
/// </summary>
public static class LogitStats
{
    /// <summary>log Σ exp(logits), computed from the largest logit so nothing overflows.</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits) max = Math.Max(max, l);
        if (double.IsNaN(max) || double.IsInfinity(max)) return max;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return max + Math.Log(sum);
    }

    /// <summary>-log softmax(logits)[target]: the surprise of the actual next token, in nats.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target) => LogSumExp(logits) - logits[target];

    /// <summary>
    /// KL(P ‖ Q) = Σ P(v) (log P(v) - log Q(v)) in nats, P = softmax(<paramref name="reference"/>), Q =
    /// softmax(<paramref name="candidate"/>): 0 exactly when the logits are equal (every term is P(v) x 0).
    /// </summary>
    public static double KlDivergence(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate)
    {
        if (reference.Length != candidate.Length)
            throw new ArgumentException($"distributions over {reference.Length} and {candidate.Length} tokens", nameof(candidate));
        double zp = LogSumExp(reference), zq = LogSumExp(candidate), kl = 0;
        for (int v = 0; v < reference.Length; v++)
        {
            double logP = reference[v] - zp;
            kl += Math.Exp(logP) * (logP - (candidate[v] - zq));
        }
        return kl;
    }
}
