using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Tests.Paged;

/// <summary>Attention through a block table gives exactly the contiguous cache's logits, in prefill and decode.</summary>
public class PagedAttentionTests
{
    public static TheoryData<string, int, KvElementType> Cases()
    {
        var data = new TheoryData<string, int, KvElementType>();
        foreach (var model in new[] { "llama-gqa.Q8_0", "qwen2-bias.F32", "stories260K.Q4_K_M" })
            foreach (int blockSize in new[] { 1, 16, 7 })
                foreach (var kv in new[] { KvElementType.F32, KvElementType.F16, KvElementType.Q8_0 })
                    data.Add(model, blockSize, kv);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PagedLogitsEqualContiguousLogits(string fixture, int blockSize, KvElementType kv)
    {
        using var model = LlmModel.Load(TestPaths.Fixture(fixture + ".gguf"), new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var prompt = Fixtures.All[0].PromptIds; // 64 tokens: 7 does not divide it
        var contiguous = model.CreateCache(KvCacheMode.Contiguous, 128, kv);
        var expectedPrefill = model.Evaluate(prompt, contiguous, allLogits: true);

        using var pool = new KvBlockPool(model.Config, blockSize, (128 + blockSize - 1) / blockSize, elementType: kv);
        var paged = new PagedKvSequence(pool, 128);
        var forward = model.CreateForwardPass();
        var prefill = new float[prompt.Length * vocab];
        forward.Forward(prompt, paged, prefill, allLogits: true);
        Assert.Equal(expectedPrefill, prefill);

        // Decode eight greedy steps in both.
        var logits = new float[vocab];
        var expected = expectedPrefill.AsSpan((prompt.Length - 1) * vocab).ToArray();
        for (int step = 0; step < 8; step++)
        {
            int next = KvSharp.Sampling.Sampler.ArgMax(expected);
            expected = model.Evaluate([next], contiguous);
            forward.Forward([next], paged, logits, allLogits: false);
            Assert.Equal(expected, logits);
        }
        Assert.Equal(72, paged.Length);
        Assert.Equal((72 + blockSize - 1) / blockSize, paged.BlockTable.Count);
        paged.Release();
        Assert.Equal(0, pool.UsedBlocks);
        pool.Verify();
    }

    [Fact]
    public void ForkSharesBlocksAndCopiesOnWrite()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        using var pool = new KvBlockPool(model.Config, 4, 16);
        var forward = model.CreateForwardPass();
        var logits = new float[model.Config.VocabSize];
        var parent = new PagedKvSequence(pool, 64);
        forward.Forward([1, 410, 469, 347, 261, 400], parent, logits, false); // 6 tokens: one full block + a partial one
        var child = parent.Fork();
        Assert.Equal(2, pool.UsedBlocks);
        Assert.Equal(parent.BlockTable, child.BlockTable);
        Assert.Equal(2, pool.RefCount(parent.BlockTable[1]));

        // Writing to the shared partial block copies it for the writer; the other keeps the original.
        var childLogits = new float[logits.Length];
        forward.Forward([300], child, childLogits, false);
        Assert.NotEqual(parent.BlockTable[1], child.BlockTable[1]);
        Assert.Equal(parent.BlockTable[0], child.BlockTable[0]);
        Assert.Equal(3, pool.UsedBlocks);

        // The parent continuing with a different token gives what a fresh sequence would.
        forward.Forward([301], parent, logits, false);
        var fresh = model.Evaluate([1, 410, 469, 347, 261, 400, 301], model.CreateCache());
        Assert.Equal(fresh, logits);
        var freshChild = model.Evaluate([1, 410, 469, 347, 261, 400, 300], model.CreateCache());
        Assert.Equal(freshChild, childLogits);

        child.Release();
        parent.Release();
        Assert.Equal(0, pool.UsedBlocks);
        pool.Verify();
    }

    [Fact]
    public void TruncateRewindsAndRecomputesTheSame()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        using var pool = new KvBlockPool(model.Config, 4, 16);
        var forward = model.CreateForwardPass();
        var seq = new PagedKvSequence(pool, 64);
        var first = new float[model.Config.VocabSize];
        var again = new float[model.Config.VocabSize];
        forward.Forward([1, 410, 469, 347, 261, 400, 300, 280, 290], seq, first, false);
        Assert.Equal(3, seq.BlockTable.Count);
        seq.Truncate(5);
        Assert.Equal(2, seq.BlockTable.Count);
        Assert.Equal(2, pool.UsedBlocks);
        forward.Forward([400, 300, 280, 290], seq, again, false);
        Assert.Equal(first, again);
        seq.Release();
        pool.Verify();
    }

    [Fact]
    public void ExhaustedPoolSaysSo()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        using var pool = new KvBlockPool(model.Config, 4, 2);
        var seq = new PagedKvSequence(pool, 64);
        var e = Assert.Throws<OutOfKvBlocksException>(() => model.CreateForwardPass().Forward(new int[9], seq, new float[model.Config.VocabSize], false));
        Assert.Contains("exhausted", e.Message);
        Assert.Equal(0, seq.Length);
        seq.Release();
        pool.Verify();
    }
}
