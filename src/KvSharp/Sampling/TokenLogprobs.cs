using KvSharp.Tensors;

namespace KvSharp.Sampling;

/// <summary>A token and its log-probability.</summary>
public readonly record struct TokenLogprob(int Token, float Logprob);

/// <summary>
/// What OpenAI's logprobs report for one sampled token: its log-probability under the model's distribution (the
/// logits as the model gave them: before penalties, temperature and filters) and the most likely tokens' at that step.
/// </summary>
public sealed record TokenLogprobs(TokenLogprob Sampled, TokenLogprob[] Top)
{
    /// <summary>Where <see cref="Sampled"/> stands among all tokens, most likely first, from 1 (vLLM's rank: one more than the tokens with a larger logit).</summary>
    public int SampledRank { get; init; } = 1;

    /// <summary>Log-softmax of <paramref name="logits"/> at <paramref name="token"/>, and the <paramref name="top"/> largest, most likely first (ties: lower id).</summary>
    public static TokenLogprobs From(ReadOnlySpan<float> logits, int token, int top)
    {
        // Vectorized: a prompt scored with its logprobs takes this once per position, over the whole vocabulary.
        float logTotal = FloatOps.LogSumExp(logits);
        float own = logits[token];
        int above = FloatOps.CountGreater(logits, own);

        // The k largest by a bounded insertion pass (k is small: OpenAI allows 20).
        int k = Math.Min(top, logits.Length), filled = 0;
        var best = new TokenLogprob[k];
        for (int id = 0; id < logits.Length && k > 0; id++)
        {
            // Once k are held, whole runs of 8 below the k-th are passed over at once.
            if (filled == k && (id & 7) == 0 && id + 8 <= logits.Length && FloatOps.CountGreater(logits.Slice(id, 8), best[k - 1].Logprob) == 0)
            {
                id += 7;
                continue;
            }
            float l = logits[id];
            if (filled == k && !(l > best[k - 1].Logprob)) continue;
            int pos = filled < k ? filled++ : k - 1;
            while (pos > 0 && l > best[pos - 1].Logprob)
            {
                best[pos] = best[pos - 1];
                pos--;
            }
            best[pos] = new TokenLogprob(id, l);
        }
        for (int i = 0; i < k; i++) best[i] = best[i] with { Logprob = best[i].Logprob - logTotal };
        return new TokenLogprobs(new TokenLogprob(token, own - logTotal), best) { SampledRank = above + 1 };
    }
}
