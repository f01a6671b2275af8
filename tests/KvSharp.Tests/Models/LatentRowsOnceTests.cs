using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Tiers;
using KvSharp.Engine;
using KvSharp.Persistence;
using KvSharp.Sampling;
using KvSharp.Tests.Persistence;
using static KvSharp.Tests.Models.DeepSeek2Variants;

namespace KvSharp.Tests.Models;

/// <summary>
/// A latent model's cache keeps each row (rotated key part and latent) once, its values a view of its keys: half the
/// bytes per token in the contiguous cache, the paged pool and the quantized types, no value storage allocated, a
/// session file and a prefix block that carry the row once and continue bit for bit, an old file or block that held
/// it twice refused by its version, and every other model's cache as it was.
/// </summary>
public sealed class LatentRowsOnceTests : IDisposable
{
    private readonly LlmModel _model = LlmModel.Load(ArchitectureVariants.Path(ArchitectureVariants.DeepSeek2F32),
        new ModelLoadOptions { Threads = 2, ContextLength = 512 });

    public void Dispose() => _model.Dispose();

    private const int Row = Rope + KvRank;

    /// <summary>One stored row of the deepseek2 test model: 80 elements, and a Q8_0/Q4_0 scale for its one group (80 is no multiple of 32).</summary>
    public static TheoryData<KvElementType, int> RowBytes() => new()
    {
        { KvElementType.F32, Row * 4 },
        { KvElementType.F16, Row * 2 },
        { KvElementType.Q8_0, Row + 4 },
        { KvElementType.Q4_0, Row / 2 + 4 },
    };

    [Theory]
    [MemberData(nameof(RowBytes))]
    public void BytesPerTokenCountTheRowOnce(KvElementType type, int rowBytes)
    {
        var c = _model.Config;
        Assert.True(c.ValuesAreKeys);
        long once = (long)c.LayerCount * rowBytes;
        Assert.Equal(once, KvSizing.BytesPerToken(c, type));
        if (type is KvElementType.F32 or KvElementType.F16) Assert.Equal(once, c.KvBytesPerToken(type == KvElementType.F32 ? 4 : 2));

        // Contiguous: one array per layer and head, the values' the keys' own.
        var cache = new KvCache(c, KvCacheMode.Static, 64, type);
        Assert.True(cache.ValuesAreKeys);
        Assert.Equal(once, cache.BytesPerToken);
        Assert.Equal(once * 64, cache.AllocatedBytes);
        for (int l = 0; l < c.LayerCount; l++)
        {
            Assert.True(Unsafe.AreSame(ref MemoryMarshal.GetReference(cache.KeyRows(l, 0)), ref MemoryMarshal.GetReference(cache.ValueRows(l, 0))));
            Assert.Equal(64L * rowBytes, cache.KeyRows(l, 0).Length + cache.KeySide(l, 0).Length);
        }

        // Paged: the pool has key planes only, and a value row is its key row.
        using var pool = new KvBlockPool(c, 16, 4, KvElementFormat.Of(type));
        Assert.True(pool.ValuesAreKeys);
        Assert.Equal(once * 16, pool.BytesPerBlock);
        Assert.Equal(once * 16 * 4, pool.TotalBytes);
        Assert.True(Unsafe.AreSame(ref MemoryMarshal.GetReference(pool.BlockRows(1, false)), ref MemoryMarshal.GetReference(pool.BlockRows(1, true))));
        Assert.Equal(pool.RowsPerSide, pool.RowsPerBlock);
        // A budget of 32 blocks' rows holds 32 blocks, where rows kept twice would fit 16.
        using var budgeted = KvBlockPool.FromBudget(c, 16, once * 16 * 32, KvElementFormat.Of(type));
        Assert.Equal(32, budgeted.BlockCount);
    }

    [Fact]
    public void NoValueStorageIsAllocated()
    {
        // A static cache allocates every row up front: the bytes it takes are one row per position and layer, not two.
        const int positions = 4096;
        var format = KvElementFormat.Of(KvElementType.F32);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var cache = new KvCache(_model.Config, KvCacheMode.Static, positions, format);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long once = (long)_model.Config.LayerCount * Row * 4 * positions;
        Assert.InRange(allocated, once, once + once / 8);
        GC.KeepAlive(cache);
    }

    [Fact]
    public void FormatsThatEncodeTheValueHalfApartKeepBothHalves()
    {
        // A mixed pair stores the value half in another type, KIVI per token rather than per channel: both halves stay.
        var c = _model.Config;
        Assert.False(KvElementFormat.Of(KvElementType.F16, KvElementType.Q8_0).StoresRowsOnce(c));
        Assert.Equal(c.LayerCount * (Row * 2L + Row + 4), KvSizing.BytesPerToken(c, KvElementType.F16, KvElementType.Q8_0));
        Assert.False(KvElementFormat.Of(KvElementType.Kivi4).StoresRowsOnce(c));
        var mixed = new KvCache(c, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F16, KvElementType.Q8_0));
        Assert.False(mixed.ValuesAreKeys);
    }

    [Fact]
    public void AModelWithoutLatentAttentionStoresKeysAndValuesAsBefore()
    {
        using var stories = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        var c = stories.Config;
        Assert.False(c.ValuesAreKeys);
        long twice = 2L * c.LayerCount * c.KvHeadCount * c.HeadDim;
        Assert.Equal(twice * 4, KvSizing.BytesPerToken(c, KvElementType.F32));
        Assert.Equal(twice * 2, KvSizing.BytesPerToken(c, KvElementType.F16));
        Assert.Equal(twice * 4, c.KvBytesPerToken(4));
        var cache = new KvCache(c, KvCacheMode.Static, 64, KvElementType.F16);
        Assert.False(cache.ValuesAreKeys);
        Assert.False(Unsafe.AreSame(ref MemoryMarshal.GetReference(cache.KeyRows(0, 0)), ref MemoryMarshal.GetReference(cache.ValueRows(0, 0))));
        using var pool = new KvBlockPool(c, 16, 4, KvElementType.Q8_0);
        Assert.False(pool.ValuesAreKeys);
        Assert.Equal(16 * KvSizing.BytesPerToken(c, KvElementType.Q8_0), pool.BytesPerBlock);
        Assert.Equal(2 * pool.RowsPerSide, pool.RowsPerBlock);
    }

    private static readonly int[] Prompt = [.. Fixtures.All[0].PromptIds.Take(12)];

    private InferenceSession Primed(KvElementType type) => SessionFileTests.Primed(_model, type, Prompt);

    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.Q8_0)]
    public void ASavedSessionHoldsTheRowOnceAndContinuesBitForBit(KvElementType type)
    {
        using var saved = Primed(type);
        var buffer = new MemoryStream();
        saved.Save(buffer);
        byte[] file = buffer.ToArray();
        Assert.Equal(SessionFile.Version, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8)));
        var header = SessionFile.ReadHeader(new MemoryStream(file));
        Assert.True(header.Kv.ValuesAreKeys);
        Assert.Equal(saved.Cache.BytesPerToken, header.Kv.BytesPerPosition);
        Assert.Equal(header.CachedLength * saved.Cache.BytesPerToken, KvData(file).Length);

        using var restored = _model.CreateSession(new SessionOptions { ContextLength = 64, KvElementType = type });
        restored.Load(new MemoryStream(file));
        Assert.Equal(saved.Tokens, restored.Tokens);
        var expected = SessionFileTests.Continue(saved, 3);
        var got = SessionFileTests.Continue(restored, 3);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], got[i]);
    }

    [Fact]
    public void AVersion2FileThatHoldsTheRowTwiceIsRefusedByItsVersion()
    {
        using var saved = Primed(KvElementType.F32);
        var buffer = new MemoryStream();
        saved.Save(buffer);
        // Re-encode as the previous version wrote a latent session: no flag in KVLY, each layer's key rows then the same
        // rows again as its values.
        var v3 = new MemoryStream(buffer.ToArray());
        var v2 = new MemoryStream();
        ChecksummedSections.ReadHeader(v3, "KVSESS\r\n"u8, SessionFile.Version, "session");
        ChecksummedSections.WriteHeader(v2, "KVSESS\r\n"u8, 2);
        int layerBytes = (int)(saved.Cache.BytesPerToken / _model.Config.LayerCount * saved.Cache.Length);
        foreach (var (tag, name) in new[] { ("MODL", "model fingerprint"), ("KVLY", "KV layout"), ("SEQN", "sequence"), ("KVDT", "KV data") })
        {
            byte[] payload = ChecksummedSections.Read(v3, tag, name, long.MaxValue);
            if (tag == "KVLY") payload = payload[..^1];
            if (tag == "KVDT")
                payload = [.. Enumerable.Range(0, _model.Config.LayerCount).SelectMany(l => payload.Skip(l * layerBytes).Take(layerBytes).Concat(payload.Skip(l * layerBytes).Take(layerBytes)))];
            ChecksummedSections.Write(v2, tag, payload);
        }
        using var target = _model.CreateSession(new SessionOptions { ContextLength = 64 });
        var e = Assert.Throws<SessionFileException>(() => target.Load(new MemoryStream(v2.ToArray())));
        Assert.Contains("version 2", e.Message);
        Assert.Contains("twice", e.Message);
        Assert.Equal(0, target.Cache.Length);
    }

    /// <summary>The KVDT section's payload of a session file.</summary>
    private static byte[] KvData(byte[] file)
    {
        var stream = new MemoryStream(file);
        ChecksummedSections.ReadHeader(stream, "KVSESS\r\n"u8, SessionFile.Version, "session");
        foreach (var (tag, name) in new[] { ("MODL", "model fingerprint"), ("KVLY", "KV layout"), ("SEQN", "sequence") })
            ChecksummedSections.Read(stream, tag, name, long.MaxValue);
        return ChecksummedSections.Read(stream, "KVDT", "KV data", long.MaxValue);
    }

    [Theory]
    [InlineData(KvElementType.F32)]
    [InlineData(KvElementType.Q8_0)]
    public void ThePagedEngineGivesEveryRequestItsContiguousTokens(KvElementType type)
    {
        // Requests sharing a 24-token prefix, batched in one paged pool: the later ones adopt the first one's blocks
        // (prefix reuse, copy-on-write at the block they diverge in), and each gets what it gets alone in a session.
        using var engine = new LlmEngine(_model, new EngineOptions { ContextLength = 128, BlockCount = 64, BlockSize = 8, KvElementType = type });
        Assert.True(engine.Pool.ValuesAreKeys);
        var prompts = Fixtures.All[0].PromptIds;
        int[][] requests = [[.. prompts.Take(30)], [.. prompts.Take(24), .. prompts.Skip(31).Take(5)], [.. prompts.Take(27), 7, 9], [.. prompts.Take(24)]];
        var options = new GenerationOptions { MaxTokens = 12, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy };
        var first = engine.Submit(new EngineRequest { PromptTokens = requests[0], Options = options });
        engine.RunUntilIdle();
        var rest = requests.Skip(1).Select(p => engine.Submit(new EngineRequest { PromptTokens = p, Options = options })).ToList();
        engine.RunUntilIdle();
        Assert.All(rest, h => Assert.True(h.CachedPromptTokens >= 16, $"{h.CachedPromptTokens} prompt tokens adopted"));
        var handles = rest.Prepend(first).ToArray();
        for (int i = 0; i < requests.Length; i++)
        {
            using var session = _model.CreateSession(new SessionOptions { ContextLength = 128, KvElementType = type });
            session.GenerateTokens(requests[i], options).ToList();
            Assert.Equal(session.Tokens.Skip(requests[i].Length), handles[i].OutputTokens[0]);
        }
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();

        // A saved prefix carries each block's row once (block format version 2) and comes back into another engine.
        var file = new MemoryStream();
        int saved = engine.SavePrefix(requests[0], null, file);
        Assert.Equal(24, saved);
        var (_, blocks) = PrefixFile.Read(new MemoryStream(file.ToArray()));
        Assert.All(blocks, b => Assert.Equal(KvTierBlock.EncodedLength(8, checked((int)engine.Pool.BytesPerBlock)), b.Length));
        Assert.All(blocks, b => Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4))));
        using var target = new LlmEngine(_model, new EngineOptions { ContextLength = 128, BlockCount = 64, BlockSize = 8, KvElementType = type });
        Assert.Equal(24, target.RestorePrefix(new MemoryStream(file.ToArray()), null));
        var again = target.Submit(new EngineRequest { PromptTokens = requests[0], Options = options });
        target.RunUntilIdle();
        Assert.Equal(24, again.CachedPromptTokens);
        Assert.Equal(first.OutputTokens[0], again.OutputTokens[0]);
    }

    [Fact]
    public void AVersion1BlockIsRefusedByAPoolThatKeepsTheRowOnceAndReadByOneThatDoesNot()
    {
        var id = new KvTierBlock.Identity(1, 2, 3, 4);
        int[] tokens = [5, 6, 7, 8];
        var older = new byte[KvTierBlock.EncodedLength(4, 16)];
        KvTierBlock.Encode(id, tokens, new byte[16], older);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(older.AsSpan(4)));
        Assert.True(KvTierBlock.TryDecode(older, id, tokens, 16, out _, out _));
        Assert.False(KvTierBlock.TryDecode(older, id, tokens, 16, out _, out string? problem, valuesAreKeys: true));
        Assert.Contains("version 1", problem);
        Assert.Contains("twice", problem);

        var once = new byte[older.Length];
        KvTierBlock.Encode(id, tokens, new byte[16], once, valuesAreKeys: true);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(once.AsSpan(4)));
        Assert.True(KvTierBlock.TryDecode(once, id, tokens, 16, out _, out _, valuesAreKeys: true));
    }
}
