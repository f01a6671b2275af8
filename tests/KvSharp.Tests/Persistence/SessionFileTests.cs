using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Persistence;
using KvSharp.Sampling;
using KvSharp.Synthetic;
using KvSharp.Tensors;
using KvSharp.Tests.Bench;

namespace KvSharp.Tests.Persistence;

/// <summary>
/// Session save/restore: a restored session continues with the logits of the session that was saved (which never
/// left memory), bit for bit, for F32 and quantized KV; a file of another model, another KV type, another version,
/// truncated or bit-flipped anywhere is refused with an error that names what is wrong.
/// </summary>
public sealed class SessionFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-session-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private LlmModel Synthetic(ulong seed = 7, GgmlType type = GgmlType.Q8_0)
    {
        string path = Path.Combine(_dir, $"micro-{type}-{seed}.gguf");
        if (!File.Exists(path)) SyntheticModelBuilder.Write(SyntheticModelTests.Micro, type, path, contextLength: 64, seed: seed);
        return LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
    }

    private static readonly int[] Prompt = [1, 41, 7, 99, 23, 5, 61, 17, 88, 3, 12, 240];

    private static InferenceSession Session(LlmModel model, KvElementType kv) =>
        model.CreateSession(new SessionOptions { ContextLength = 64, KvElementType = kv });

    /// <summary>
    /// A session holding the prompt (<paramref name="prompt"/>, else this class's) and a few generated tokens (the last
    /// one sampled but not computed yet).
    /// </summary>
    internal static InferenceSession Primed(LlmModel model, KvElementType kv, int[]? prompt = null)
    {
        var session = Session(model, kv);
        session.GenerateTokens(prompt ?? Prompt, new GenerationOptions { MaxTokens = 4, StopAtEndOfGeneration = false }).ToList();
        return session;
    }

    /// <summary>Logits of greedy steps from the session's current state.</summary>
    internal static List<float[]> Continue(InferenceSession session, int steps)
    {
        var all = new List<float[]>();
        for (int i = 0; i < steps; i++)
        {
            var logits = session.NextTokenLogits().ToArray();
            all.Add(logits);
            session.GenerateTokens([Sampler.ArgMax(logits)], new GenerationOptions { MaxTokens = 0 }).ToList();
        }
        return all;
    }

    private static byte[] Save(InferenceSession session)
    {
        using var buffer = new MemoryStream();
        session.Save(buffer);
        return buffer.ToArray();
    }

    /// <summary>The message with which <paramref name="target"/> refuses <paramref name="file"/>.</summary>
    private static string Refusal(InferenceSession target, byte[] file) =>
        Assert.Throws<SessionFileException>(() => target.Load(new MemoryStream(file))).Message;

    /// <summary>Why a session of <paramref name="target"/> refuses a primed session of <paramref name="source"/>.</summary>
    private static string Refusal(LlmModel source, LlmModel target, KvElementType sourceKv = KvElementType.F32, KvElementType targetKv = KvElementType.F32)
    {
        using var saved = Primed(source, sourceKv);
        using var session = Session(target, targetKv);
        return Refusal(session, Save(saved));
    }

    public static TheoryData<string, KvElementType> Cases() => new()
    {
        { "stories", KvElementType.F32 },
        { "stories", KvElementType.Q8_0 },
        { "synthetic", KvElementType.F32 },
        { "synthetic", KvElementType.Q4_0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ARestoredSessionContinuesBitIdentically(string which, KvElementType kv)
    {
        using var model = which == "stories" ? Stories() : Synthetic();
        using var original = Primed(model, kv);
        var file = Save(original);
        var tokens = original.Tokens.ToArray();
        Assert.Equal(tokens.Length - 1, original.Cache.Length);

        using var restored = Session(model, kv);
        restored.Load(new MemoryStream(file));
        Assert.Equal(tokens, restored.Tokens);
        Assert.Equal(original.Cache.Length, restored.Cache.Length);
        // Nothing was recomputed: the rows are the saved bytes.
        Assert.True(original.Cache.KeyRows(0, 0)[..restored.Cache.KeyRows(0, 0).Length].SequenceEqual(restored.Cache.KeyRows(0, 0)));

        var expected = Continue(original, 6);
        var actual = Continue(restored, 6);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);
    }

    [Fact]
    public void AFileFromAnotherModelIsRefusedByItsWeights()
    {
        using var a = Synthetic(seed: 7);
        using var b = Synthetic(seed: 8);
        using var saved = Primed(a, KvElementType.F32);
        using var target = Primed(b, KvElementType.F32);
        var before = target.Tokens.ToArray();
        string message = Refusal(target, Save(saved));
        Assert.Contains("another model", message);
        Assert.Contains("tensor hash", message);
        Assert.Equal(before, target.Tokens); // a mismatch restores nothing and clears nothing
    }

    [Fact]
    public void AFileFromAModelOfAnotherShapeIsRefusedByItsShape()
    {
        using var a = Synthetic();
        using var b = Stories();
        Assert.Contains("another model: shape", Refusal(a, b));
    }

    [Fact]
    public void AFileOfAnotherKvTypeIsRefusedByItsType()
    {
        using var model = Synthetic();
        Assert.Contains("holds a F32 KV cache but this session stores Q8_0", Refusal(model, model, KvElementType.F32, KvElementType.Q8_0));
    }

    [Fact]
    public void AFileWithAnotherOverflowPolicyOrTooLongForTheContextIsRefused()
    {
        using var model = Synthetic();
        using var saved = Primed(model, KvElementType.F32);
        var file = Save(saved);
        using var shifting = model.CreateSession(new SessionOptions { ContextLength = 64, ContextOverflow = ContextOverflow.Shift });
        Assert.Contains("context overflow policy", Refusal(shifting, file));
        using var small = model.CreateSession(new SessionOptions { ContextLength = 8 });
        Assert.Contains("more than this session's context length of 8", Refusal(small, file));
    }

    [Fact]
    public void EveryTruncationIsRefusedAsTruncated()
    {
        using var model = Synthetic();
        using var saved = Primed(model, KvElementType.Q8_0);
        var file = Save(saved);
        using var target = Session(model, KvElementType.Q8_0);
        for (int length = 0; length < file.Length; length += Math.Max(1, length / 7))
        {
            string message = Refusal(target, file[..length]);
            Assert.True(message.Contains("truncated") || (length < 8 && message.Contains("not a KvSharp session file")), $"cut at {length}: {message}");
            Assert.Empty(target.Tokens);
            Assert.Equal(0, target.Cache.Length);
        }
    }

    [Fact]
    public void AFlippedBitAnywhereIsRefusedNeverRestored()
    {
        using var model = Synthetic();
        using var saved = Primed(model, KvElementType.F32);
        var file = Save(saved);
        using var target = Session(model, KvElementType.F32);
        var rng = new Random(17);
        // Every byte of the header and framing, and a sample of the KV rows.
        var offsets = Enumerable.Range(0, 400).Concat(Enumerable.Range(0, 200).Select(_ => rng.Next(file.Length))).Append(file.Length - 1);
        foreach (int offset in offsets.Distinct())
        {
            var damaged = (byte[])file.Clone();
            damaged[offset] ^= (byte)(1 << rng.Next(8));
            Assert.Matches("corrupted|checksum|truncated|magic|version|another model|KV", Refusal(target, damaged));
            Assert.Empty(target.Tokens);
            Assert.Equal(0, target.Cache.Length);
        }
    }

    [Fact]
    public void AFileOfAnotherVersionOrNoSessionFileIsRefusedByName()
    {
        using var model = Synthetic();
        using var saved = Primed(model, KvElementType.F32);
        var file = Save(saved);
        using var target = Session(model, KvElementType.F32);
        file[8] = 4;
        Assert.Contains("version 4 is not supported: this build reads versions 1 to 3", Refusal(target, file));
        Assert.Contains("not a KvSharp session file", Refusal(target, "GGUF and more"u8.ToArray()));
    }

    /// <summary>
    /// A version 1 file (as builds before the local layers' ring wrote it: no first positions, every layer from 0) is
    /// still read, and continues as the session it came from.
    /// </summary>
    [Fact]
    public void AVersion1FileIsStillRead()
    {
        using var model = Synthetic();
        using var saved = Primed(model, KvElementType.Q8_0);
        var v2 = new MemoryStream(Save(saved));
        // Re-encode as version 1: the same sections, SEQN without its trailing layer count and first positions.
        var v1 = new MemoryStream();
        ChecksummedSections.ReadHeader(v2, "KVSESS\r\n"u8, 2, "session");
        ChecksummedSections.WriteHeader(v1, "KVSESS\r\n"u8, 1);
        foreach (var (tag, name) in new[] { ("MODL", "model fingerprint"), ("KVLY", "KV layout"), ("SEQN", "sequence"), ("KVDT", "KV data") })
        {
            byte[] payload = ChecksummedSections.Read(v2, tag, name, long.MaxValue);
            if (tag == "SEQN") payload = payload[..^(4 + 4 * model.Config.LayerCount)];
            ChecksummedSections.Write(v1, tag, payload);
        }
        using var restored = Session(model, KvElementType.Q8_0);
        restored.Load(new MemoryStream(v1.ToArray()));
        Assert.Equal(saved.Tokens, restored.Tokens);
        var expected = Continue(saved, 3);
        var got = Continue(restored, 3);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], got[i]);
    }

    [Fact]
    public void ASessionWithoutACacheHasNothingToSave()
    {
        using var model = Synthetic();
        using var none = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.None, ContextLength = 64 });
        Assert.Throws<InvalidOperationException>(() => none.Save(new MemoryStream()));
    }

    [Theory]
    [InlineData("window:16")]
    [InlineData("sinks:2+window:16")]
    [InlineData("h2o:16")]
    [InlineData("snapkv:16")]
    public void AWindowedSessionIsRefusedBothWaysNamingItsPolicy(string policy)
    {
        using var model = Synthetic();
        using var full = Primed(model, KvElementType.F32);
        var file = new MemoryStream(Save(full));
        using var windowed = model.CreateSession(new SessionOptions { ContextLength = 64, CachePolicy = KvCachePolicy.Parse(policy) });
        windowed.GenerateTokens(Prompt, new GenerationOptions { MaxTokens = 4, StopAtEndOfGeneration = false }).ToList();
        var save = Assert.Throws<NotSupportedException>(() => windowed.Save(new MemoryStream()));
        Assert.Contains($"'{policy}'", save.Message);
        var load = Assert.Throws<NotSupportedException>(() => windowed.Load(file));
        Assert.Contains($"'{policy}'", load.Message);
        // The file format itself refuses such a cache too, for callers that skip the session.
        var header = SessionFile.ReadHeader(new MemoryStream(Save(full)));
        Assert.Contains($"'{policy}'", Assert.Throws<NotSupportedException>(() => SessionFile.Write(new MemoryStream(), header, windowed.Cache)).Message);
        Assert.Contains($"'{policy}'", Assert.Throws<NotSupportedException>(() => SessionFile.ReadKv(new MemoryStream(), header, windowed.Cache)).Message);
    }

    [Fact]
    public void AKiviSessionIsRefusedNamingItsType()
    {
        using var model = Synthetic();
        using var kivi = model.CreateSession(new SessionOptions { ContextLength = 64, KvElementType = KvElementType.Kivi4 });
        kivi.GenerateTokens(Prompt, new GenerationOptions { MaxTokens = 4, StopAtEndOfGeneration = false }).ToList();
        Assert.Contains("KIVI4", Assert.Throws<NotSupportedException>(() => kivi.Save(new MemoryStream())).Message, StringComparison.OrdinalIgnoreCase);
    }
}
