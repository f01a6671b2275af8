using KvSharp.Cache;
using KvSharp.Sampling;

namespace KvSharp.Evaluation;

/// <summary>
/// Evaluation text the model writes itself, so a long text stays in the distribution it was trained on: independent
/// pieces, each from a fresh start (BOS, or EOS for a model without one) and well within the trained context, sampled
/// at temperature 1 with a fixed seed and concatenated. A piece ends at an end-of-generation token (kept: the model
/// predicted it) or after <c>pieceTokens</c> tokens.
/// </summary>
public static class EvalText
{
    /// <summary>Pieces of at most this many tokens, or half the trained context where that is shorter.</summary>
    public const int DefaultPieceTokens = 256;

    /// <summary>Exactly <paramref name="count"/> tokens of generated text; the same seed gives the same tokens.</summary>
    public static int[] Generate(LlmModel model, int count, ulong seed = 42, int? pieceTokens = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "generate at least 1 token");
        int piece = pieceTokens ?? Math.Max(2, Math.Min(DefaultPieceTokens, model.Config.TrainedContextLength / 2));
        if (piece < 2) throw new ArgumentOutOfRangeException(nameof(pieceTokens), piece, "a piece needs a start token and at least one more");
        var tok = model.Tokenizer;
        int start = tok.AddBos && tok.BosId >= 0 ? tok.BosId : tok.EosId;
        if (start < 0) throw new NotSupportedException($"{model.Path}: the tokenizer has neither BOS nor EOS to start a piece of text from");

        var cache = new KvCache(model.Config, KvCacheMode.Contiguous, piece);
        var forward = model.CreateForwardPass(maxBatch: 1);
        var sampler = new Sampler(new SamplingOptions { Temperature = 1f, Seed = seed }, model.Config.VocabSize);
        var logits = new float[model.Config.VocabSize];
        var text = new int[count];
        int n = 0;
        while (n < count)
        {
            cache.Reset();
            int first = n;
            text[n++] = start;
            while (n < count && n - first < piece)
            {
                forward.Forward(text.AsSpan(n - 1, 1), cache, logits, allLogits: false);
                int next = sampler.Sample(logits, text.AsSpan(first, n - first));
                text[n++] = next;
                if (tok.IsEndOfGeneration(next)) break;
            }
        }
        return text;
    }
}
