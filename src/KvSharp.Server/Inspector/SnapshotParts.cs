using System.Buffers;
using System.Text.Json;
using KvSharp.Engine;

namespace KvSharp.Server.Inspector;

/// <summary>
/// One snapshot serialised part by part (the model, the pool's counts, the block map, the sequences, the prefix tree,
/// the counters, the tiers), so the event stream can write it whole (<see cref="WriteFull"/>: the same JSON as
/// <c>GET /v1/kv/snapshot</c>) or as the parts that differ from the snapshot before (<see cref="WriteDelta"/>).
/// Comparing serialised bytes is exact and cheap beside the serialising, which is done once either way.
/// </summary>
internal sealed class SnapshotParts
{
    /// <summary>Unchanged cells shorter than this between two changed ones join one run: a run costs about as much.</summary>
    private const int RunGap = 8;

    private readonly EngineSnapshotDetail _snapshot;
    // _counts: the pool without its map (an empty string), which a delta patches run by run and a whole snapshot splices in.
    private readonly byte[] _model, _counts, _sequences, _prefixTree, _counters, _tiers;
    /// <summary>Where each prefix node's JSON lies in <see cref="_prefixTree"/> (its leading comma excluded).</summary>
    private readonly (int Start, int Length)[] _nodes;

    public SnapshotParts(EngineSnapshotDetail snapshot)
    {
        var json = InspectorJson.Default;
        _snapshot = snapshot;
        _model = JsonSerializer.SerializeToUtf8Bytes(snapshot.Model, json.EngineSnapshotModel);
        _counts = JsonSerializer.SerializeToUtf8Bytes(snapshot.Blocks with { Map = "" }, json.EngineSnapshotBlocks);
        _sequences = JsonSerializer.SerializeToUtf8Bytes(snapshot.Sequences, json.IReadOnlyListEngineSnapshotSequence);
        (_prefixTree, _nodes) = SerializeTree(snapshot.PrefixTree);
        _counters = JsonSerializer.SerializeToUtf8Bytes(snapshot.Counters, json.EngineSnapshotCounters);
        _tiers = JsonSerializer.SerializeToUtf8Bytes(snapshot.Tiers, json.IReadOnlyListEngineSnapshotTier);
    }

    public long Changes => _snapshot.Changes;

    /// <summary>The whole snapshot, property for property what the serialiser writes for <see cref="EngineSnapshotDetail"/>.</summary>
    public byte[] WriteFull()
    {
        var buffer = new ArrayBufferWriter<byte>(_model.Length + _counts.Length + _snapshot.Blocks.Map.Length + _sequences.Length + _prefixTree.Length + _counters.Length + _tiers.Length + 128);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            WriteHeader(w);
            w.WritePropertyName("model"u8); w.WriteRawValue(_model, skipInputValidation: true);
            w.WritePropertyName("blocks"u8); w.WriteRawValue(BlocksWithMap(), skipInputValidation: true);
            w.WritePropertyName("sequences"u8); w.WriteRawValue(_sequences, skipInputValidation: true);
            w.WritePropertyName("prefix_tree"u8); w.WriteRawValue(_prefixTree, skipInputValidation: true);
            w.WritePropertyName("counters"u8); w.WriteRawValue(_counters, skipInputValidation: true);
            w.WritePropertyName("tiers"u8); w.WriteRawValue(_tiers, skipInputValidation: true);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The pool's JSON with its map: <see cref="_counts"/> with the map's string where its empty one was.</summary>
    private byte[] BlocksWithMap()
    {
        // Inside a string a quote is escaped, so the unescaped bytes can only be the property itself.
        int at = _counts.AsSpan().IndexOf("\"map\":\"\""u8);
        if (at < 0) throw new InvalidOperationException("the pool's JSON has no empty \"map\" to fill");
        var map = JsonEncodedText.Encode(_snapshot.Blocks.Map).EncodedUtf8Bytes;
        int head = at + "\"map\":\""u8.Length;
        var bytes = new byte[_counts.Length + map.Length];
        _counts.AsSpan(0, head).CopyTo(bytes);
        map.CopyTo(bytes.AsSpan(head));
        _counts.AsSpan(head).CopyTo(bytes.AsSpan(head + map.Length));
        return bytes;
    }

    /// <summary>
    /// What changed since <paramref name="before"/>: <c>base</c> (its change count), the header, and only the parts
    /// whose JSON differs; a changed pool comes as <c>blocks</c> with an empty map and <c>map_runs</c>, each
    /// <c>[first block, "new cells"]</c>; a changed prefix tree as <c>prefix_tree_length</c> (its nodes now) and
    /// <c>prefix_tree_runs</c>, each <c>[first index, [nodes]]</c>: the nodes that differ at their place in the list.
    /// </summary>
    public byte[] WriteDelta(SnapshotParts before)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("base"u8, before.Changes);
            WriteHeader(w);
            WriteIfChanged(w, "model"u8, _model, before._model);
            if (!_counts.AsSpan().SequenceEqual(before._counts) || _snapshot.Blocks.Map != before._snapshot.Blocks.Map)
            {
                w.WritePropertyName("blocks"u8); w.WriteRawValue(_counts, skipInputValidation: true);
                WriteMapRuns(w, before._snapshot.Blocks.Map, _snapshot.Blocks.Map);
            }
            WriteIfChanged(w, "sequences"u8, _sequences, before._sequences);
            if (!_prefixTree.AsSpan().SequenceEqual(before._prefixTree)) WriteTreeRuns(w, before);
            WriteIfChanged(w, "counters"u8, _counters, before._counters);
            WriteIfChanged(w, "tiers"u8, _tiers, before._tiers);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The tree's JSON array, serialised node by node into one buffer so each node's bytes can be compared.</summary>
    private static (byte[] Json, (int Start, int Length)[] Nodes) SerializeTree(IReadOnlyList<EngineSnapshotPrefixNode> tree)
    {
        var buffer = new ArrayBufferWriter<byte>(64 * tree.Count + 2);
        var nodes = new (int, int)[tree.Count];
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartArray();
            w.Flush();
            for (int i = 0; i < tree.Count; i++)
            {
                int start = buffer.WrittenCount + (i > 0 ? 1 : 0); // the writer puts the separating comma before the node
                JsonSerializer.Serialize(w, tree[i], InspectorJson.Default.EngineSnapshotPrefixNode);
                w.Flush();
                nodes[i] = (start, buffer.WrittenCount - start);
            }
            w.WriteEndArray();
        }
        return (buffer.WrittenSpan.ToArray(), nodes);
    }

    private ReadOnlySpan<byte> Node(int i) => _prefixTree.AsSpan(_nodes[i].Start, _nodes[i].Length);

    /// <summary>True when node <paramref name="i"/> is byte for byte the one at the same index in <paramref name="before"/>.</summary>
    private bool SameNode(SnapshotParts before, int i) => i < before._nodes.Length && Node(i).SequenceEqual(before.Node(i));

    /// <summary>
    /// The tree's changed nodes as runs at their indices: a run that grows by a block, or a count that moves, is one
    /// node; a chain inserted before others shifts the ids after it, and those nodes come too.
    /// </summary>
    private void WriteTreeRuns(Utf8JsonWriter w, SnapshotParts before)
    {
        w.WriteNumber("prefix_tree_length"u8, _nodes.Length);
        w.WriteStartArray("prefix_tree_runs"u8);
        int i = 0;
        while (i < _nodes.Length)
        {
            if (SameNode(before, i)) { i++; continue; }
            int start = i;
            while (i < _nodes.Length && !SameNode(before, i)) i++;
            w.WriteStartArray();
            w.WriteNumberValue(start);
            w.WriteStartArray();
            for (int n = start; n < i; n++) w.WriteRawValue(Node(n), skipInputValidation: true);
            w.WriteEndArray();
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }

    private void WriteHeader(Utf8JsonWriter w)
    {
        w.WriteNumber("step"u8, _snapshot.Step);
        w.WriteNumber("changes"u8, _snapshot.Changes);
        w.WriteString("taken_at"u8, _snapshot.TakenAt);
    }

    private static void WriteIfChanged(Utf8JsonWriter w, ReadOnlySpan<byte> name, byte[] now, byte[] before)
    {
        if (now.AsSpan().SequenceEqual(before)) return;
        w.WritePropertyName(name);
        w.WriteRawValue(now, skipInputValidation: true);
    }

    /// <summary>The cells that differ, as runs; a pool's size never changes, but a different length gets the whole map.</summary>
    internal static void WriteMapRuns(Utf8JsonWriter w, string before, string now)
    {
        w.WriteStartArray("map_runs"u8);
        if (before.Length != now.Length)
        {
            WriteRun(w, now, 0, now.Length);
        }
        else
        {
            int i = 0;
            while (i < now.Length)
            {
                if (now[i] == before[i]) { i++; continue; }
                int start = i, end = i + 1; // end: one past the last changed cell of the run
                for (int j = end; j < now.Length && j - end < RunGap; j++)
                    if (now[j] != before[j]) end = j + 1;
                WriteRun(w, now, start, end);
                i = end;
            }
        }
        w.WriteEndArray();
    }

    private static void WriteRun(Utf8JsonWriter w, string map, int start, int end)
    {
        w.WriteStartArray();
        w.WriteNumberValue(start);
        w.WriteStringValue(map.AsSpan(start, end - start));
        w.WriteEndArray();
    }
}
