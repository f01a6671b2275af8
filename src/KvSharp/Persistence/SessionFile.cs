using System.Buffers.Binary;
using System.Text;
using KvSharp.Cache;

namespace KvSharp.Persistence;

/// <summary>
/// A saved <c>InferenceSession</c>: the magic "KVSESS\r\n", a format version (u32), then checksummed sections
/// (<see cref="ChecksummedSections"/>) in this order: MODL (the <see cref="ModelFingerprint"/>), KVLY (the
/// <see cref="KvLayout"/>), SEQN (context, overflow policy, token ids, cached length, and since version 2 each layer's
/// first saved position), KVDT (per layer, per KV head, the key rows and their side data, then the value rows and
/// theirs, for positions [first, cached length): first is 0, or for a local layer kept as a ring of its window
/// (<see cref="KvCache.LocalLayerRows"/>) the oldest position it held).
/// Everything but the KV rows is read and checked before anything is restored; a file from another model or KV layout,
/// of another version, truncated or corrupted is refused with one <see cref="SessionFileException"/> that says which.
/// Version 3 adds, at the end of KVLY, whether the values are the keys (<see cref="KvLayout.ValuesAreKeys"/>: a latent
/// model's cache keeps each row once), and KVDT then holds per KV head the key rows and their side data alone. A file
/// whose values are stored apart is written as version 2, byte for byte what earlier builds wrote. Version 1 files
/// (every layer from position 0) are still read; a version 1 or 2 file of a latent model, which holds each row twice,
/// is refused naming its version (<see cref="SessionCompatibility"/>).
/// </summary>
public static class SessionFile
{
    public const uint Version = 3;
    // The version a layout whose values are stored apart is written as: version 3 changed nothing for it.
    private const uint ApartVersion = 2;
    private const uint OldestVersion = 1;
    private static ReadOnlySpan<byte> Magic => "KVSESS\r\n"u8;
    private const int MaxHeaderSection = 1 << 20;

    public static void Write(Stream stream, SavedSession session, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(cache);
        CheckFull(cache, "written");
        if (session.CachedLength > cache.Length) throw new ArgumentException($"the session claims {session.CachedLength} cached positions but the cache holds {cache.Length}");
        uint version = VersionFor(session.Kv);
        ChecksummedSections.WriteHeader(stream, Magic, version);
        ChecksummedSections.Write(stream, "MODL", Build(w =>
        {
            var m = session.Model;
            w.Write(m.Architecture);
            w.Write(m.Shape);
            w.Write(m.TensorTypes);
            w.Write(m.TensorHash);
        }));
        ChecksummedSections.Write(stream, "KVLY", Build(w => WriteLayout(w, session.Kv, version)));
        int cached = session.CachedLength;
        int[] first = [.. Enumerable.Range(0, cache.LayerCount).Select(l => Math.Min(cache.OldestHeld(l), cached))];
        ChecksummedSections.Write(stream, "SEQN", Build(w =>
        {
            w.Write(session.ContextLength);
            w.Write(session.ContextOverflow.ToString());
            w.Write(session.ContextShiftKeep ?? -1);
            w.Write(session.ContextShiftDiscard ?? -1);
            w.Write(cached);
            w.Write(session.Tokens.Length);
            foreach (int t in session.Tokens) w.Write(t);
            w.Write(first.Length);
            foreach (int f in first) w.Write(f);
        }));
        var kv = session.Kv;
        var rows = ChecksummedSections.Begin(stream, "KVDT", DataBytes(kv, cached, l => first[l]));
        for (int l = 0; l < kv.Layers; l++) ForEachRun(cache, kv, l, first[l], cached, run => rows.Append(run));
        rows.End();
    }

    /// <summary>The version a file of layout <paramref name="kv"/> is written as: 3 where the values are the keys, else 2.</summary>
    public static uint VersionFor(KvLayout kv) => kv.ValuesAreKeys ? Version : ApartVersion;

    /// <summary>Bytes of the KV rows of a file holding positions [first(l), cached) of each layer l.</summary>
    private static long DataBytes(KvLayout kv, int cached, Func<int, int> first) =>
        Enumerable.Range(0, kv.Layers).Sum(l => kv.BytesPerLayerPosition * (cached - first(l)));

    /// <summary>Reads and checks everything before the KV rows; the stream is left at the KV rows (<see cref="ReadKv"/>).</summary>
    /// <summary>A file holds position p's rows at p: only a cache that keeps every position where it was written has them so.</summary>
    private static void CheckFull(KvCache cache, string what)
    {
        if (!cache.Policy.KeepsEverything)
            throw new NotSupportedException($"a cache with policy '{cache.Policy}' cannot be {what} as a session file: session files hold the full cache only (policy full)");
    }

    public static SavedSession ReadHeader(Stream stream)
    {
        uint version = ChecksummedSections.ReadHeader(stream, Magic, OldestVersion, Version, "session");
        var model = Parse(ChecksummedSections.Read(stream, "MODL", "model fingerprint", MaxHeaderSection),
            r => new ModelFingerprint(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadUInt64()));
        var layout = Parse(ChecksummedSections.Read(stream, "KVLY", "KV layout", MaxHeaderSection), r => ReadLayout(r, version));
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
            int[] first = [];
            if (version >= 2)
            {
                int layers = r.ReadInt32();
                if (layers != layout.Layers)
                    throw new SessionFileException($"session file: {layers} first positions for a layout of {layout.Layers} layers: the file is corrupted");
                first = new int[layers];
                for (int l = 0; l < layers; l++)
                    if ((first[l] = r.ReadInt32()) < 0 || first[l] > cached)
                        throw new SessionFileException($"session file: layer {l}'s rows start at position {first[l]}, outside [0, {cached}]: the file is corrupted");
            }
            return new SavedSession
            {
                Model = model, Kv = layout, ContextLength = context, ContextOverflow = policy,
                ContextShiftKeep = keep < 0 ? null : keep, ContextShiftDiscard = discard < 0 ? null : discard,
                Tokens = tokens, CachedLength = cached, FirstPositions = first, FormatVersion = version,
            };
        });
    }

    /// <summary>
    /// Reads the KV rows of <paramref name="session"/> (from <see cref="ReadHeader"/>) into positions
    /// [0, CachedLength) of the empty <paramref name="cache"/>, whose layout must equal the file's, and commits them.
    /// A local layer kept as a ring takes the positions its ring holds (the file's last ones); a layer kept whole cannot
    /// take a file that holds only the last positions of it. On a checksum failure or a truncated file the cache is
    /// reset before the exception.
    /// </summary>
    public static void ReadKv(Stream stream, SavedSession session, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        CheckFull(cache, "restored");
        if (cache.Length != 0) throw new InvalidOperationException("KV rows are restored into an empty cache");
        if (KvLayout.Of(cache) != session.Kv) throw new InvalidOperationException("the cache's layout differs from the file's: check it first");
        var kv = session.Kv;
        int cached = session.CachedLength, oldest = 0;
        // Per layer, the first position restored: the file's first, or later where a ring holds fewer.
        var kept = new int[kv.Layers];
        for (int l = 0; l < kv.Layers; l++)
        {
            int first = session.FirstPosition(l);
            if (cache.KeepsRing(l))
            {
                kept[l] = Math.Max(first, cached - cache.LocalLayerRows);
                oldest = Math.Max(oldest, kept[l]);
            }
            else if (first > 0)
                throw new SessionFileException($"session file holds layer {l}'s rows from position {first} on only (its session kept the local layers " +
                    "as a ring of their window): restore it into a session that keeps them as a ring too, not one that keeps every position (fullLocalLayers)");
        }
        cache.EnsureCapacity(cached);
        long expected = DataBytes(kv, cached, session.FirstPosition);
        try
        {
            var rows = ChecksummedSections.Open(stream, "KVDT", "KV data", expected);
            if (rows.Length != expected)
                throw new SessionFileException($"session file: section 'KVDT' (KV data) holds {rows.Length} bytes, expected {expected}: the file is corrupted");
            var skipped = new byte[4096];
            for (int l = 0; l < kv.Layers; l++)
            {
                // A ring's older positions pass through the checksum and are dropped.
                long dropped = kept[l] - session.FirstPosition(l);
                ForEachRun(cache, kv, l, kept[l], cached, run => rows.Read(run), rowBytes =>
                {
                    for (long left = dropped * rowBytes; left > 0; left -= skipped.Length)
                        rows.Read(skipped.AsSpan(0, (int)Math.Min(left, skipped.Length)));
                });
            }
            rows.End();
            cache.Restored(cached, oldest);
        }
        catch
        {
            // Rows already copied are zeroed: nothing of a damaged file stays behind.
            for (int l = 0; l < kv.Layers; l++) ForEachRun(cache, kv, l, kept[l], cached, run => run.Clear());
            throw;
        }
    }

    /// <summary>
    /// The rows of positions [<paramref name="from"/>, <paramref name="to"/>) of one layer in file order: per KV head,
    /// key rows, key side data, value rows, value side data (the key's alone where the values are the keys), each in runs
    /// of consecutive rows (two where a ring wraps). Before each plane's runs, <paramref name="skip"/> (if given) gets its
    /// bytes per row.
    /// </summary>
    private static void ForEachRun(KvCache cache, KvLayout kv, int layer, int from, int to, SpanAction run, Action<int>? skip = null)
    {
        for (int h = 0; h < kv.KvHeads; h++)
        {
            PlaneRuns(cache, layer, from, to, cache.KeyRows(layer, h), kv.KeyRowBytes, run, skip);
            PlaneRuns(cache, layer, from, to, cache.KeySide(layer, h), kv.KeySideBytes, run, skip);
            if (kv.ValuesAreKeys) continue;
            PlaneRuns(cache, layer, from, to, cache.ValueRows(layer, h), kv.ValueRowBytes, run, skip);
            PlaneRuns(cache, layer, from, to, cache.ValueSide(layer, h), kv.ValueSideBytes, run, skip);
        }
    }

    private static void PlaneRuns(KvCache cache, int layer, int from, int to, Span<byte> plane, int rowBytes, SpanAction run, Action<int>? skip)
    {
        skip?.Invoke(rowBytes);
        if (rowBytes == 0) return;
        for (int p = from; p < to;)
        {
            // Up to the end of the plane's rows, where a ring wraps.
            int row = cache.RowOf(layer, p), rows = Math.Min(to - p, plane.Length / rowBytes - row);
            run(plane.Slice(row * rowBytes, rows * rowBytes));
            p += rows;
        }
    }

    private delegate void SpanAction(Span<byte> run);

    private static void WriteLayout(BinaryWriter w, KvLayout kv, uint version)
    {
        w.Write(kv.KeyType);
        w.Write(kv.ValueType);
        foreach (int n in (ReadOnlySpan<int>)[kv.Layers, kv.KvHeads, kv.HeadDim, kv.KeyRowBytes, kv.KeySideBytes, kv.ValueRowBytes, kv.ValueSideBytes])
            w.Write(n);
        if (version >= 3) w.Write(kv.ValuesAreKeys);
    }

    /// <summary>A layout as <paramref name="version"/> writes it: before version 3 values were always stored apart.</summary>
    private static KvLayout ReadLayout(BinaryReader r, uint version) => new(r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(),
        r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), version >= 3 && r.ReadBoolean());

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
