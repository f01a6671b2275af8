using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Sampling;

namespace KvSharp.Tests.Cache;

/// <summary>A model's logits with a cache of a given element type, the same through a contiguous cache and a paged pool.</summary>
internal static class KvTypeLogits
{
    public static readonly int[] Prompt = [1, 45, 300, 12, 99, 7, 410, 88, 23, 5, 61, 200, 17, 3, 250, 42, 11, 9, 130, 77];

    /// <summary>
    /// The logits of <see cref="Prompt"/>'s last token, then of one greedy decode step, with a contiguous cache of
    /// <paramref name="kv"/>; asserts that a paged pool of the same type (block size 16: the prompt leaves a partial
    /// block) gives them bit for bit.
    /// </summary>
    public static float[] PromptThenStep(LlmModel model, KvElementType kv) => PromptThenStep(model, KvElementFormat.Of(kv));

    /// <summary><see cref="PromptThenStep(LlmModel, KvElementType)"/> with keys and values of their own types.</summary>
    public static float[] PromptThenStep(LlmModel model, KvElementFormat kv)
    {
        int vocab = model.Config.VocabSize;
        var cache = new KvCache(model.Config, KvCacheMode.Contiguous, 64, kv);
        var logits = model.Evaluate(Prompt, cache);
        float[] both = [.. logits, .. model.Evaluate([Sampler.ArgMax(logits)], cache)];

        using var pool = new KvBlockPool(model.Config, 16, 8, kv);
        var sequence = new PagedKvSequence(pool, 64);
        var forward = model.CreateForwardPass();
        var paged = new float[vocab];
        forward.Forward(Prompt, sequence, paged, allLogits: false);
        Assert.Equal(both[..vocab], paged);
        forward.Forward([Sampler.ArgMax(paged)], sequence, paged, allLogits: false);
        Assert.Equal(both[vocab..], paged);
        return both;
    }
}
