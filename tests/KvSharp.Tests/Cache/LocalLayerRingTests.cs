using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Models;
using KvSharp.Persistence;
using KvSharp.Sampling;
using KvSharp.Tests.Models;

namespace KvSharp.Tests.Cache;

/// <summary>
/// A model whose local layers attend through a window of their own (Gemma 3's five local layers per global one; the
/// test variant's window is 24) keeps only a ring of that window in them: the logits are the bits a cache keeping
/// every position gives, through prefill, decode, steps larger than the ring was sized for, rewinds and session files,
/// while the local layers' memory stops growing with the context.
/// </summary>
public sealed class LocalLayerRingTests
{
    private const int Context = 512;

    private static LlmModel Gemma3(bool q8 = false) =>
        LlmModel.Load(ArchitectureVariants.Path(q8 ? ArchitectureVariants.Gemma3Q8 : ArchitectureVariants.Gemma3F32), new ModelLoadOptions { Threads = 2 });

    private static KvCache Cache(LlmModel model, KvElementType type, bool full, KvCacheMode mode = KvCacheMode.Contiguous, int context = Context) =>
        new(model.Config, mode, context, KvElementFormat.Of(type), KvCachePolicy.Full, model.Rope, fullLocalLayers: full);

    /// <summary>Deterministic token ids of the vocabulary (BOS first).</summary>
    private static int[] Tokens(LlmModel model, int count) =>
        [model.Tokenizer.BosId, .. Enumerable.Range(1, count - 1).Select(i => 3 + i * 37 % (model.Config.VocabSize - 3))];

    /// <summary>Runs <paramref name="tokens"/> in steps of the given sizes (cycled), returning every token's logits.</summary>
    private static float[] Run(ForwardPass forward, KvCache cache, ReadOnlySpan<int> tokens, params int[] steps) =>
        SteppedLogits.Run(forward, cache, tokens, cache.Config.VocabSize, steps);

    private static void AssertSameBits(float[] expected, float[] actual, string what) =>
        Tensors.MatMulTests.AssertBitsEqual(expected, actual, $"{what}, against a cache keeping every position");

    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.Q8_0)]
    [InlineData(KvElementType.F16)]
    public void TheRingGivesTheBitsOfAWholeCacheThroughPrefillDecodeAndLargerSteps(KvElementType type)
    {
        using var model = Gemma3();
        var forward = model.CreateForwardPass(maxBatch: 512);
        var tokens = Tokens(model, 720);
        var whole = Cache(model, type, full: true, context: 1024);
        var ring = Cache(model, type, full: false, context: 1024);
        Assert.Equal(0, whole.LocalLayerRows);
        int rows = ring.LocalLayerRows;
        Assert.Equal(LocalLayerRing.RowsFor(24, LocalLayerRing.DefaultStep), rows);
        Assert.InRange(rows, 24 + 256 + 32, 24 + 256 + 64);

        // A 180-token prompt, then decode and steps of 7 past the ring's length.
        int[] steps = [180, 1, 1, 1, 7, 1];
        var expected = Run(forward, whole, tokens.AsSpan(0, 420), steps);
        var actual = Run(forward, ring, tokens.AsSpan(0, 420), steps);
        AssertSameBits(expected, actual, "to 420 tokens");
        Assert.Equal(420 - rows, ring.OldestHeld(0));
        Assert.Equal(0, ring.OldestHeld(5));
        Assert.Equal(rows, ring.HeldPositionsOf(0));
        Assert.Equal(420, ring.HeldPositionsOf(5));
        // A step of 280 tokens, more than the ring was sized for: it grows first, its wrapped rows moved; then decode.
        AssertSameBits(Run(forward, whole, tokens.AsSpan(420, 300), 280, 1), Run(forward, ring, tokens.AsSpan(420, 300), 280, 1), "tokens 420-720");
        Assert.Equal(LocalLayerRing.RowsFor(24, 280), ring.LocalLayerRows);

        // Memory: the global layer keeps every position, the five local ones their ring.
        long perLayer = ring.BytesPerToken / 6;
        Assert.Equal(perLayer * (ring.Capacity + 5L * ring.LocalLayerRows), ring.AllocatedBytes);
        Assert.Equal(perLayer * (720 + 5L * ring.LocalLayerRows), ring.UsedBytes);
        Assert.Equal(whole.BytesPerToken * 720, whole.UsedBytes);

        // A row the ring still holds reads back as the whole cache's; one it dropped is refused by name.
        var a = new float[model.Config.HeadDim];
        var b = new float[model.Config.HeadDim];
        whole.ReadKey(2, 1, 700, a);
        ring.ReadKey(2, 1, 700, b);
        Assert.Equal(a, b);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ring.ReadValue(2, 1, 10, b));
        Assert.Contains("holds positions from", e.Message);
    }

    [Fact]
    public void AStaticCacheAllocatesTheLocalLayersRingOnly()
    {
        using var model = Gemma3();
        var ring = Cache(model, KvElementType.F32, full: false, KvCacheMode.Static);
        var whole = Cache(model, KvElementType.F32, full: true, KvCacheMode.Static);
        Assert.Equal(whole.BytesPerToken * Context, whole.AllocatedBytes);
        Assert.Equal(whole.BytesPerToken / 6 * (Context + 5L * ring.LocalLayerRows), ring.AllocatedBytes);
        // What sizing says before anything is allocated (the CLI's memory checks, inspect).
        var f32 = KvElementFormat.Of(KvElementType.F32);
        Assert.Equal(ring.AllocatedBytes, KvSizing.SequenceBytes(model.Config, f32, Context));
        Assert.Equal(whole.AllocatedBytes, KvSizing.SequenceBytes(model.Config, f32, Context, fullLocalLayers: true));
        Assert.Equal(ring.LocalLayerRows, KvSizing.LocalLayerRows(model.Config));
        var forward = model.CreateForwardPass();
        var tokens = Tokens(model, 400);
        AssertSameBits(Run(forward, whole, tokens, 100, 1, 3), Run(forward, ring, tokens, 100, 1, 3), "static");
    }

    [Fact]
    public void ARewindTheRingHoldsKeepsTheCacheAndALongerOneIsRefusedOrRecomputed()
    {
        using var model = Gemma3();
        var forward = model.CreateForwardPass();
        var tokens = Tokens(model, 460);
        var whole = Cache(model, KvElementType.F32, full: true);
        var ring = Cache(model, KvElementType.F32, full: false);
        var expected = Run(forward, whole, tokens, 200, 1);
        Run(forward, ring, tokens, 200, 1);

        // Back 40 tokens (what a re-rendered reply rewinds): the ring still holds the window of position 420.
        Assert.True(ring.CanTruncateTo(420));
        ring.Truncate(420);
        var again = Run(forward, ring, tokens.AsSpan(420), 1);
        AssertSameBits(expected[(420 * 512)..], again, "after a rewind to 420");

        // Back to 100: the ring has long overwritten positions 77-99.
        Assert.False(ring.CanTruncateTo(100));
        var e = Assert.Throws<InvalidOperationException>(() => ring.Truncate(100));
        Assert.Contains("ring", e.Message);
        Assert.Equal(460, ring.Length);
        Assert.True(ring.CanTruncateTo(0));

        // A session rewound that far recomputes, and continues as one that never went further.
        using var session = model.CreateSession(new SessionOptions { ContextLength = Context });
        session.GenerateTokens(tokens, new GenerationOptions { MaxTokens = 0 }).ToList();
        Assert.True(session.Cache.LocalLayerRows > 0);
        session.Truncate(100);
        Assert.Equal(100, session.Tokens.Count);
        Assert.Equal(0, session.Cache.Length);
        var rewound = session.NextTokenLogits().ToArray();
        using var fresh = model.CreateSession(new SessionOptions { ContextLength = Context, FullLocalLayers = true });
        fresh.GenerateTokens(tokens[..100], new GenerationOptions { MaxTokens = 0 }).ToList();
        AssertSameBits(fresh.NextTokenLogits().ToArray(), rewound, "recomputed after a long rewind");
    }

    [Fact]
    public void ASessionFileHoldsTheRingAndRestoresWhereTheRingOrAWholeCacheCanTakeIt()
    {
        using var model = Gemma3(q8: true);
        var tokens = Tokens(model, 430);
        InferenceSession Primed(bool full)
        {
            var s = model.CreateSession(new SessionOptions { ContextLength = Context, FullLocalLayers = full, KvElementType = KvElementType.Q8_0 });
            s.GenerateTokens(tokens, new GenerationOptions { MaxTokens = 0 }).ToList();
            return s;
        }
        byte[] Save(InferenceSession s)
        {
            using var buffer = new MemoryStream();
            s.Save(buffer);
            return buffer.ToArray();
        }
        List<float[]> Continue(InferenceSession s)
        {
            var all = new List<float[]>();
            for (int i = 0; i < 6; i++)
            {
                var logits = s.NextTokenLogits().ToArray();
                all.Add(logits);
                s.GenerateTokens([Sampler.ArgMax(logits)], new GenerationOptions { MaxTokens = 0 }).ToList();
            }
            return all;
        }

        using var ringSession = Primed(full: false);
        using var wholeSession = Primed(full: true);
        byte[] ringFile = Save(ringSession), wholeFile = Save(wholeSession);
        // The five local layers hold the ring's positions, not all 430.
        int oldest = ringSession.Cache.OldestHeld(0);
        Assert.Equal(430 - ringSession.Cache.LocalLayerRows, oldest);
        Assert.Equal(5L * oldest * (ringSession.Cache.BytesPerToken / 6), wholeFile.Length - ringFile.Length);
        var expected = Continue(wholeSession);

        foreach (var (file, name) in new[] { (ringFile, "ring file"), (wholeFile, "whole file") })
        {
            using var restored = model.CreateSession(new SessionOptions { ContextLength = Context, KvElementType = KvElementType.Q8_0 });
            restored.Load(new MemoryStream(file));
            Assert.Equal(tokens, restored.Tokens);
            var got = Continue(restored);
            for (int i = 0; i < got.Count; i++) AssertSameBits(expected[i], got[i], $"{name}, step {i}");
        }

        // A session keeping every position cannot take a file that holds the local layers' last positions only.
        using var whole = model.CreateSession(new SessionOptions { ContextLength = Context, FullLocalLayers = true, KvElementType = KvElementType.Q8_0 });
        var e = Assert.Throws<SessionFileException>(() => whole.Load(new MemoryStream(ringFile)));
        Assert.Contains("fullLocalLayers", e.Message);
        Assert.Equal(0, whole.Cache.Length);
    }
}
