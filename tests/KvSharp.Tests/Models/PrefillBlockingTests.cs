using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>
/// A prefill runs attention over blocks of consecutive tokens (how many per block depends on the batch and the
/// thread count); every token's logits are still bit for bit those of feeding the prompt one token at a time.
/// </summary>
public class PrefillBlockingTests
{
    [Theory]
    [InlineData("llama-gqa.Q8_0", 0, 2)]  // GQA, 4 query heads per KV head
    [InlineData("llama-gqa.Q8_0", 7, 1)]
    [InlineData("qwen2-bias.F32", 16, 2)] // MQA: one KV head, so few items and small blocks
    [InlineData("llama-tied.F16", 0, 1)]  // MHA
    public void PrefillLogitsEqualTokenByTokenLogits(string fixture, int pagedBlockSize, int threads)
    {
        using var model = LlmModel.Load(TestPaths.Fixture(fixture + ".gguf"), new ModelLoadOptions { Threads = threads });
        int vocab = model.Config.VocabSize;
        // 150 tokens: past several attention tiles (32 positions), and no block size divides it evenly.
        var rng = new Random(11);
        var prompt = Enumerable.Range(0, 150).Select(_ => rng.Next(3, vocab)).ToArray();
        using var pool = new KvBlockPool(model.Config, Math.Max(pagedBlockSize, 1), 2 * 160);
        IKvStore Store() => pagedBlockSize == 0 ? model.CreateCache(KvCacheMode.Contiguous, 160) : new PagedKvSequence(pool, 160);

        var forward = model.CreateForwardPass();
        var prefill = new float[prompt.Length * vocab];
        forward.Forward(prompt, Store(), prefill, allLogits: true);

        var stepwise = Store();
        var logits = new float[vocab];
        for (int t = 0; t < prompt.Length; t++)
        {
            forward.Forward(prompt.AsSpan(t, 1), stepwise, logits, allLogits: false);
            Assert.True(MemoryMarshal.AsBytes(logits.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(prefill.AsSpan(t * vocab, vocab))),
                $"token {t}: prefill and one-at-a-time logits differ");
        }
    }
}
