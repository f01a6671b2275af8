using System.Diagnostics;
using System.Runtime.CompilerServices;
using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Tests.Cache;

/// <summary>
/// The contiguous cache's rows on huge pages from 2 MiB on (<see cref="ContiguousKvPlanes"/>): where they go, that they
/// are freed exactly once and not used after, that they give the same logits as managed arrays, and that
/// KVSHARP_HUGEPAGES=0 keeps them on arrays.
/// </summary>
public class KvCacheHugePagesTests
{
    // stories260K's shape: 1,280 bytes per F32 position, so 2,048 positions are 2.6 MB, 64 are 80 KB.
    private static ModelConfig Config(int headDim = 8) => new()
    {
        Architecture = "llama", EmbeddingDim = 4 * headDim, LayerCount = 5, HeadCount = 4, KvHeadCount = 4, HeadDim = headDim,
        FeedForwardDim = 8, VocabSize = 1, TrainedContextLength = 16, RmsNormEps = 1e-5f,
        RopeTheta = 10000f, RopeStyle = RopeStyle.Normal, RopeDimensions = headDim,
    };

    private static KvCache Cache(KvCacheMode mode, int maxLength, bool hugePages, KvElementType type = KvElementType.F32, int headDim = 8) =>
        new(Config(headDim), mode, maxLength, KvElementFormat.Of(type), KvCachePolicy.Full, null, hugePages);

    [Fact]
    public void OnlyACacheOfAHugePageOrMoreGoesOnHugePages()
    {
        using var large = Cache(KvCacheMode.Static, 2048, hugePages: true);
        using var small = Cache(KvCacheMode.Static, 64, hugePages: true);
        using var off = Cache(KvCacheMode.Static, 2048, hugePages: false);
        Assert.True(large.OnHugePages);
        Assert.False(small.OnHugePages);
        Assert.False(off.OnHugePages);
        // The public constructors follow KVSHARP_HUGEPAGES (the child process below checks it set to 0).
        using var byDefault = new KvCache(Config(), KvCacheMode.Static, 2048);
        Assert.Equal(HugePageMemory.Advised, byDefault.OnHugePages);
    }

    [Fact]
    public void AContiguousCacheMovesOntoHugePagesAsItGrowsPastOneKeepingItsRows()
    {
        // Q8_0 rows of 32 elements: 1,440 bytes per position, so a huge page from 2,048 positions of capacity on.
        using var cache = Cache(KvCacheMode.Contiguous, 4096, hugePages: true, KvElementType.Q8_0, headDim: 32);
        var store = (IKvStore)cache;
        for (int p = 0; p < 2000; p++)
        {
            store.Reserve(p + 1);
            for (int l = 0; l < 5; l++) store.Write(l, p, Row(p, l, 128), Row(p, -l, 128));
            cache.Commit(p + 1);
            Assert.Equal(cache.Capacity >= 2048, cache.OnHugePages);
        }
        Assert.True(cache.OnHugePages);
        using var reference = Cache(KvCacheMode.Static, 2000, hugePages: false, KvElementType.Q8_0, headDim: 32);
        for (int p = 0; p < 2000; p++)
            for (int l = 0; l < 5; l++) ((IKvStore)reference).Write(l, p, Row(p, l, 128), Row(p, -l, 128));
        for (int l = 0; l < 5; l++)
            for (int h = 0; h < 4; h++)
            {
                Assert.Equal(reference.KeyRows(l, h).ToArray(), cache.KeyRows(l, h)[..reference.KeyRows(l, h).Length].ToArray());
                Assert.Equal(reference.ValueSide(l, h).ToArray(), cache.ValueSide(l, h)[..reference.ValueSide(l, h).Length].ToArray());
            }
    }

    private static float[] Row(int position, int layer, int length) =>
        [.. Enumerable.Range(0, length).Select(i => MathF.Sin(position * 0.37f + layer * 1.3f + i * 0.11f))];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DisposeFreesOnceAndLaterUsesThrowObjectDisposed(bool large)
    {
        var cache = Cache(KvCacheMode.Static, large ? 2048 : 64, hugePages: true);
        var region = cache.Planes.Region;
        Assert.Equal(large, region != null);
        cache.Dispose();
        Assert.True(region?.IsClosed ?? true);
        cache.Dispose(); // a second dispose does nothing
        Assert.False(cache.OnHugePages);
        var row = new float[8];
        Assert.Throws<ObjectDisposedException>(() => cache.KeyRows(0, 0).Length);
        Assert.Throws<ObjectDisposedException>(() => cache.ValueSide(4, 3).Length);
        Assert.Throws<ObjectDisposedException>(() => cache.ReadKey(0, 0, 0, row));
        Assert.Throws<ObjectDisposedException>(() => ((IKvStore)cache).Write(0, 0, new float[32], new float[32]));
        Assert.Throws<ObjectDisposedException>(cache.Reset);
        var grows = Cache(KvCacheMode.Contiguous, 4096, hugePages: true);
        grows.Dispose();
        Assert.Throws<ObjectDisposedException>(() => grows.EnsureCapacity(4000));
    }

    [Fact]
    public void ACacheDroppedUndisposedIsFreedByTheFinalizer()
    {
        var region = Abandon();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        // A long weak reference still reaches the finalized handle until the next collection: it was released.
        Assert.True(region.Target is not HugePageHandle handle || handle.IsClosed);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference Abandon()
    {
        var cache = Cache(KvCacheMode.Static, 2048, hugePages: true);
        return new WeakReference(cache.Planes.Region!, trackResurrection: true);
    }

    /// <summary>
    /// stories260K through 1,700 positions (2.2 MB of F32 rows: the cache grows from arrays onto huge pages midway),
    /// decode steps, a context shift and more steps: bit for bit the logits of the same on managed arrays.
    /// </summary>
    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.Q8_0)]
    public void HugePagesAndArraysGiveTheSameLogits(KvElementType type)
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var prompt = Enumerable.Range(0, 1700).Select(i => 1 + i * 7919 % (model.Config.VocabSize - 1)).ToArray();
        float[] Run(bool hugePages)
        {
            using var cache = new KvCache(model.Config, KvCacheMode.Contiguous, 2048, KvElementFormat.Of(type), KvCachePolicy.Full, model.Rope, hugePages);
            var logits = new List<float>(model.Evaluate(prompt, cache, allLogits: true));
            for (int t = 0; t < 4; t++) logits.AddRange(model.Evaluate([10 + t], cache));
            Assert.Equal(hugePages && cache.AllocatedBytes >= HugePageMemory.PageBytes, cache.OnHugePages);
            cache.Shift(4, 300, model.Rope);
            for (int t = 0; t < 4; t++) logits.AddRange(model.Evaluate([20 + t], cache));
            cache.Truncate(1000);
            logits.AddRange(model.Evaluate([30], cache));
            return [.. logits];
        }
        Assert.Equal(Run(hugePages: false), Run(hugePages: true));
    }

    public const string ExpectOffVariable = "KVSHARP_TEST_EXPECT_HUGEPAGES_OFF";

    [Fact]
    public async Task KvsharpHugepages0KeepsTheCacheOnArrays()
    {
        string assembly = typeof(KvCacheHugePagesTests).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        foreach (string a in new[] { assembly, "-method", $"{typeof(KvCacheHugePagesTests).FullName}.{nameof(HugePagesOffGuard)}", "-noLogo", "-noColor" })
            start.ArgumentList.Add(a);
        start.Environment["KVSHARP_HUGEPAGES"] = "0";
        start.Environment[ExpectOffVariable] = "1";
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var errors = child.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await child.WaitForExitAsync(TestContext.Current.CancellationToken);
        string text = await output + await errors;
        Assert.True(child.ExitCode == 0, $"the KVSHARP_HUGEPAGES=0 run failed (exit {child.ExitCode}):\n{text}");
        Assert.Matches(@"Total: 1, Errors: 0, Failed: 0, Skipped: 0", text);
    }

    /// <summary>Run by the test above in a child process with KVSHARP_HUGEPAGES=0; skipped otherwise.</summary>
    [Fact]
    public void HugePagesOffGuard()
    {
        if (Environment.GetEnvironmentVariable(ExpectOffVariable) != "1") Assert.Skip("runs in the KVSHARP_HUGEPAGES=0 child process");
        Assert.False(HugePageMemory.Advised);
        using var cache = new KvCache(Config(), KvCacheMode.Static, 2048);
        Assert.Null(cache.Planes.Region);
        Assert.False(cache.OnHugePages);
    }
}
