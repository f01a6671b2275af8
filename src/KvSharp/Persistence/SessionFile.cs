using System.Buffers.Binary;
using System.Text;
using KvSharp.Cache;

namespace KvSharp.Persistence;

/// <summary>
/// A saved <c>InferenceSession</c>: the magic "KVSESS\r\n", a format version (u32), then checksummed sections
/// (<see cref="ChecksummedSections"/>) in this order: MODL (the <see cref="ModelFingerprint"/>), KVLY (the
/// <see cref="KvLayout"/>), SEQN (context, overflow policy, token ids, cached length), KVDT (per layer, per KV head,
/// the key rows and their side data, then the value rows and theirs, for positions [0, cached length)).
/// Everything but the KV rows is read and checked before anything is restored; a file from another model or KV layout,
/// of another version, truncated or corrupted is refused with one <see cref="SessionFileException"/> that says which.
/// </summary>
public static class SessionFile
{
    public const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "KVSESS\r\n"u8;
    private const int MaxHeaderSection = 1 << 20;

    public static void Write(Stream stream, SavedSession session, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(cache);
        CheckFull(cache, "written");
        if (session.CachedLength > cache.Length) throw new ArgumentException($"the session claims {session.CachedLength} cached positions but the cache holds {cache.Length}");
        ChecksummedSections.WriteHeader(stream, Magic, Version);
        ChecksummedSections.Write(stream, "MODL", Build(w =>
        {
            var m = session.Model;
            w.Write(m.Architecture);
            w.Write(m.Shape);
            w.Write(m.TensorTypes);
            w.Write(m.TensorHash);
        }));
        ChecksummedSections.Write(stream, "KVLY", Build(w => WriteLayout(w, session.Kv)));
        ChecksummedSections.Write(stream, "SEQN", Build(w =>
        {
            w.Write(session.ContextLength);
            w.Write(session.ContextOverflow.ToString());
            w.Write(session.ContextShiftKeep ?? -1);
            w.Write(session.ContextShiftDiscard ?? -1);
            w.Write(session.CachedLength);
            w.Write(session.Tokens.Length);
            foreach (int t in session.Tokens) w.Write(t);
        }));
        var kv = session.Kv;
        var rows = ChecksummedSections.Begin(stream, "KVDT", kv.BytesPerPosition * session.CachedLength);
        ForEachRun(cache, kv, session.CachedLength, run => rows.Append(run));
        rows.End();
    }

    /// <summary>Reads and checks everything before the KV rows; the stream is left at the KV rows (<see cref="ReadKv"/>).</summary>
    /// <summary>A file holds position p's rows at p: only a cache that keeps every position where it was written has them so.</summary>
    private static void CheckFull(KvCache cache, string what)
    {
        if (!cache.Policy.KeepsEverything)
            throw new NotSupportedException($"a cache with policy '{cache.Policy}' cannot be {what} as a session file: session files hold the full cache only (policy full)");
    }

    public static SavedSession ReadHeader(Stream stream)
    {
        ChecksummedSections.ReadHeader(stream, Magic, Version, "session");
        var model = Parse(ChecksummedSections.Read(stream, "MODL", "model fingerprint", MaxHeaderSection),
            r => new ModelFingerprint(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadUInt64()));
        var layout = Parse(ChecksummedSections.Read(stream, "KVLY", "KV layout", MaxHeaderSection), ReadLayout);
        var seqn = ChecksummedSections.Read(stream, "SEQN", "sequence", int.MaxValue);
        return Parse(seqn, r =>
        {
            int context = r.ReadInt32();
            string overflow = r.ReadString();
            int keep = r.ReadInt32(), discard = r.ReadInt32(), cached = r.ReadInt32(), count = r.ReadInt32();
            if (!Enum.TryParse<ContextOverflow>(overflow, out var policy))
                throw new SessionFileException($"session file: unknown context overflow policy '{overflow}'");
            if (count < 0 || cached < 0 || cached > count || count > context || (long)count * 4 > seqn.Length)
                throw new SessionFileException($"session file: inconsistent sequence (context {context}, {count} tokens, {cached} cached)");
            var tokens = new int[count];
            for (int i = 0; i < count; i++) tokens[i] = r.ReadInt32();
            return new SavedSession
            {
                Model = model, Kv = layout, ContextLength = context, ContextOverflow = policy,
                ContextShiftKeep = keep < 0 ? null : keep, ContextShiftDiscard = discard < 0 ? null : discard,
                Tokens = tokens, CachedLength = cached,
            };
        });
    }

    /// <summary>
    /// Reads the KV rows of <paramref name="session"/> (from <see cref="ReadHeader"/>) into positions
    /// [0, CachedLength) of the empty <paramref name="cache"/>, whose layout must equal the file's, and commits them.
    /// On a checksum failure or a truncated file the cache is reset before the exception.
    /// </summary>
    public static void ReadKv(Stream stream, SavedSession session, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        CheckFull(cache, "restored");
        if (cache.Length != 0) throw new InvalidOperationException("KV rows are restored into an empty cache");
        cache.EnsureCapacity(session.CachedLength);
        if (KvLayout.Of(cache) != session.Kv) throw new InvalidOperationException("the cache's layout differs from the file's: check it first");
        try
        {
            var rows = ChecksummedSections.Open(stream, "KVDT", "KV data", session.Kv.BytesPerPosition * session.CachedLength);
            if (rows.Length != session.Kv.BytesPerPosition * session.CachedLength)
                throw new SessionFileException($"session file: section 'KVDT' (KV data) holds {rows.Length} bytes, expected {session.Kv.BytesPerPosition * session.CachedLength}: the file is corrupted");
            ForEachRun(cache, session.Kv, session.CachedLength, run => rows.Read(run));
            rows.End();
            cache.Commit(session.CachedLength);
        }
        catch
        {
            // Rows already copied are zeroed: nothing of a damaged file stays behind.
            ZeroRuns(cache, session.Kv, session.CachedLength);
            throw;
        }
    }

    /// <summary>The KV rows in file order: per layer and KV head, key rows, key side data, value rows, value side data.</summary>
    private static void ForEachRun(KvCache cache, KvLayout kv, int positions, SpanAction run)
    {
        for (int l = 0; l < kv.Layers; l++)
            for (int h = 0; h < kv.KvHeads; h++)
            {
                run(cache.KeyRows(l, h)[..(positions * kv.KeyRowBytes)]);
                run(cache.KeySide(l, h)[..(positions * kv.KeySideBytes)]);
                run(cache.ValueRows(l, h)[..(positions * kv.ValueRowBytes)]);
                run(cache.ValueSide(l, h)[..(positions * kv.ValueSideBytes)]);
            }
    }

    private static void ZeroRuns(KvCache cache, KvLayout kv, int positions) => ForEachRun(cache, kv, positions, run => run.Clear());

    private delegate void SpanAction(Span<byte> run);

    private static void WriteLayout(BinaryWriter w, KvLayout kv)
    {
        w.Write(kv.KeyType);
        w.Write(kv.ValueType);
        foreach (int n in (ReadOnlySpan<int>)[kv.Layers, kv.KvHeads, kv.HeadDim, kv.KeyRowBytes, kv.KeySideBytes, kv.ValueRowBytes, kv.ValueSideBytes])
            w.Write(n);
    }

    private static KvLayout ReadLayout(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(),
        r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());

    private static byte[] Build(Action<BinaryWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true)) write(w);
        return buffer.ToArray();
    }

    /// <summary>Parses a section whose checksum passed; a payload that still does not parse is reported as corrupted.</summary>
    private static T Parse<T>(byte[] payload, Func<BinaryReader, T> read)
    {
        using var r = new BinaryReader(new MemoryStream(payload), Encoding.UTF8);
        try
        {
            var value = read(r);
            if (r.BaseStream.Position != payload.Length) throw new SessionFileException("session file: a section has trailing bytes: the file is corrupted");
            return value;
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or FormatException)
        {
            throw new SessionFileException($"session file: a section does not parse ({e.Message}): the file is corrupted or of another version");
        }
    }
}
