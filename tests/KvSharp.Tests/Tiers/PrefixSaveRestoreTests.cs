using KvSharp.Engine;
using KvSharp.Persistence;
using KvSharp.Sampling;

namespace KvSharp.Tests.Tiers;

/// <summary>
/// <see cref="LlmEngine.SavePrefix"/> / <see cref="LlmEngine.RestorePrefix"/>: a conversation's cached blocks saved
/// from one engine are adopted by another engine of the same model, with output bit-identical to recomputing; another
/// tenant's salt or a damaged file is refused by name.
/// </summary>
public sealed class PrefixSaveRestoreTests
{
    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static LlmEngine Engine(LlmModel model, bool prefixCaching = true) =>
        new(model, new EngineOptions { ContextLength = 128, BlockSize = 4, BlockCount = 32, PrefixCaching = prefixCaching });

    private static EngineRequest Request(LlmModel model) => new()
    {
        PromptTokens = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to", true, false),
        Options = new GenerationOptions { MaxTokens = 6, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy, TopLogprobs = 2 },
    };

    private static (int[] Tokens, float[] Logprobs) Run(LlmEngine engine, EngineRequest request)
    {
        var handle = engine.Submit(request);
        engine.RunUntilIdle();
        var logprobs = new List<float>();
        while (handle.Stream.TryRead(out var t))
            if (t.Logprobs is { } lp) logprobs.AddRange(lp.Top.Select(x => x.Logprob).Prepend(lp.Sampled.Logprob));
        return ([.. handle.OutputTokens[0]], [.. logprobs]);
    }

    private static byte[] Saved(LlmModel model, string? salt = null)
    {
        using var source = Engine(model);
        var request = Request(model) with { CacheSalt = salt };
        Run(source, request);
        using var file = new MemoryStream();
        int saved = source.SavePrefix(request.PromptTokens, salt, file);
        Assert.Equal(request.PromptTokens.Count / 4 * 4, saved);
        return file.ToArray();
    }

    [Fact]
    public void AnotherEngineAdoptsTheRestoredPrefixWithBitIdenticalOutput()
    {
        using var model = Stories();
        var file = Saved(model);
        using var target = Engine(model);
        var request = Request(model);
        Assert.Equal(request.PromptTokens.Count / 4 * 4, target.RestorePrefix(new MemoryStream(file), salt: null));
        target.Pool.Verify();
        Assert.Equal(0, target.Pool.UsedBlocks); // cached, held by nobody until a request adopts them
        var restored = Run(target, request);
        // Every restored position but the prompt's last token (computed for its logits), taken by the token.
        Assert.Equal(Math.Min(request.PromptTokens.Count / 4 * 4, request.PromptTokens.Count - 1), target.PrefixCache.HitTokens);
        using var plain = Engine(model, prefixCaching: false);
        var recomputed = Run(plain, request);
        Assert.Equal(recomputed.Tokens, restored.Tokens);
        Assert.Equal(recomputed.Logprobs, restored.Logprobs);
    }

    [Fact]
    public void AnotherTenantsSaltIsRefused()
    {
        using var model = Stories();
        var file = Saved(model, salt: "tenant-a");
        using var target = Engine(model);
        var e = Assert.Throws<InvalidDataException>(() => target.RestorePrefix(new MemoryStream(file), salt: "tenant-b"));
        Assert.Contains("block 0 of", e.Message);
        Assert.Contains("identity", e.Message);
        Assert.Equal(0, target.Pool.CachedBlocks);
        target.Pool.Verify();
    }

    [Fact]
    public void ADamagedFileIsRefusedByName()
    {
        using var model = Stories();
        var file = Saved(model);
        using var target = Engine(model);
        var flipped = (byte[])file.Clone();
        flipped[^100] ^= 4;
        Assert.Contains("checksum", Assert.Throws<SessionFileException>(() => target.RestorePrefix(new MemoryStream(flipped), null)).Message);
        Assert.Contains("truncated", Assert.Throws<SessionFileException>(() => target.RestorePrefix(new MemoryStream(file[..(file.Length / 2)]), null)).Message);
        Assert.Equal(0, target.Pool.CachedBlocks);
    }
}
