using KvSharp.Engine;
using KvSharp.Tokenization;

namespace KvSharp.Server.Generation;

/// <summary>A token's log-probability as vLLM reports it: with its rank among all tokens (1: the most likely) and its text.</summary>
public sealed record RankedLogprob(float Logprob, int? Rank, string? DecodedToken);

/// <summary>
/// vLLM's <c>prompt_logprobs</c>: one entry per prompt token, null for the first (nothing comes before it), else an
/// object from token ids (as strings) to <see cref="RankedLogprob"/>: the prompt token's own, and the k most likely
/// tokens' at that place (one entry where it is one of them).
/// </summary>
internal static class PromptLogprobsFormat
{
    public static List<Dictionary<string, RankedLogprob>?> Of(RequestHandle handle, int top, ITokenizer tokenizer)
    {
        var scored = handle.PromptLogprobs ?? throw new InvalidOperationException("the request did not score its prompt");
        var list = new List<Dictionary<string, RankedLogprob>?>(scored.Count);
        foreach (var entry in scored)
        {
            if (entry == null)
            {
                list.Add(null);
                continue;
            }
            var own = entry.Sampled;
            var map = new Dictionary<string, RankedLogprob>(top + 1)
            {
                [Key(own.Token)] = new(own.Logprob, entry.SampledRank, TokenText(tokenizer, own.Token)),
            };
            for (int k = 0; k < top && k < entry.Top.Length; k++)
                map.TryAdd(Key(entry.Top[k].Token), new(entry.Top[k].Logprob, k + 1, TokenText(tokenizer, entry.Top[k].Token)));
            list.Add(map);
        }
        return list;
    }

    private static string Key(int token) => token.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A token's own text; bytes of an unfinished character show as U+FFFD, special tokens as their text.</summary>
    public static string TokenText(ITokenizer tokenizer, int token) => System.Text.Encoding.UTF8.GetString(tokenizer.TokenPiece(token, renderSpecial: true));
}
