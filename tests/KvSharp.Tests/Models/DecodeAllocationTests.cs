using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Tests.Models;

/// <summary>
/// The decode loop allocates nothing per token once warm. The model runs with one kernel thread so every kernel
/// executes on the test's thread and the per-thread allocation counter sees all of it (a process-wide counter would
/// also see the test runner's own threads); that the pool's dispatch allocates nothing is tested in Tensors.
/// </summary>
public class DecodeAllocationTests
{
    [Theory]
    [InlineData("llama-gqa.Q4_K_M", false, KvElementType.F32)]
    [InlineData("qwen2-bias.Q8_0", false, KvElementType.F32)]
    [InlineData("llama-tied.F16", true, KvElementType.F32)]
    [InlineData("llama-gqa.Q8_0", false, KvElementType.F16)]
    [InlineData("qwen2-bias.Q4_0", true, KvElementType.F16)]
    [InlineData("llama-gqa.Q8_0", true, KvElementType.Q8_0)]
    [InlineData("qwen2-bias.F32", false, KvElementType.Q8_0)]
    public void DecodeStepsAllocateNothing(string fixture, bool paged, KvElementType kv)
    {
        using var model = LlmModel.Load(TestPaths.Fixture(fixture + ".gguf"), new ModelLoadOptions { Threads = 1 });
        var forward = model.CreateForwardPass();
        using var pool = new KvBlockPool(model.Config, 16, 16, elementType: kv);
        IKvStore store = paged ? new PagedKvSequence(pool, 256) : model.CreateCache(KvCacheMode.Static, 256, kv);
        var logits = new float[model.Config.VocabSize];
        forward.Forward(Fixtures.All[0].PromptIds, store, logits, allLogits: false);
        int token = KvSharp.Sampling.Sampler.ArgMax(logits);
        for (int i = 0; i < 8; i++) // warm up: JIT tiers, pool threads, scratch buffers
        {
            forward.Forward([token], store, logits, false);
            token = KvSharp.Sampling.Sampler.ArgMax(logits);
        }

        // Three rounds of 32 steps: an allocation per token would show in every round, while the runtime itself
        // (tiering, a type initialised late) occasionally allocates once on this thread, seen in one round only.
        var rounds = new long[3];
        for (int round = 0; round < rounds.Length; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 32; i++)
            {
                forward.Forward([token], store, logits, false);
                token = KvSharp.Sampling.Sampler.ArgMax(logits);
            }
            rounds[round] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.True(rounds.Min() == 0, $"bytes allocated per round of 32 decode steps: {string.Join(", ", rounds)}");
    }
}
