using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Server.Inspector;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>The event stream's encoding: whole snapshots as the serialiser writes them, and the block map's changed runs.</summary>
public class SnapshotPartsTests(InspectorServerFixture server) : IClassFixture<InspectorServerFixture>
{
    [Fact]
    public async Task AWholeSnapshotFromItsPartsIsTheSerialisersJson()
    {
        var request = await server.SubmitAsync("Once upon a time there was a little girl named Lily", 8, samples: 2);
        server.Engine.Step();
        server.Engine.Step();
        var snapshot = server.Engine.Inspect();
        Assert.NotEmpty(snapshot.Sequences);
        Assert.NotEmpty(snapshot.PrefixTree);
        Assert.Equal(Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(snapshot, InspectorJson.Default.EngineSnapshotDetail)),
            Encoding.UTF8.GetString(new SnapshotParts(snapshot).WriteFull()));
        await server.FinishAsync(request);
    }

    [Fact]
    public void ThePoolIsSerialisedOnceWithoutItsMapWhichAWholeSnapshotSplicesIn()
    {
        var snapshot = server.Engine.Inspect();
        // A pool of a million blocks: a second serialisation of the pool with its map would cost a megabyte.
        var large = snapshot with { Blocks = snapshot.Blocks with { Map = string.Concat(Enumerable.Repeat(".#<\"", 1 << 18)) } };
        _ = new SnapshotParts(large);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var parts = new SnapshotParts(large);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < large.Blocks.Map.Length, $"the parts of a snapshot with a {large.Blocks.Map.Length:N0}-cell map allocated {allocated:N0} bytes");
        Assert.Equal(Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(large, InspectorJson.Default.EngineSnapshotDetail)),
            Encoding.UTF8.GetString(parts.WriteFull()));
    }

    [Fact]
    public void ATreeDeltaCarriesOnlyTheNodesThatDifferAtTheirPlaces()
    {
        var snapshot = server.Engine.Inspect();
        static EngineSnapshotPrefixNode Node(int id, int parent, params int[] blocks) => new(id, parent, 0, blocks, 0, 0, false);
        var before = new SnapshotParts(snapshot with { PrefixTree = [Node(0, -1, 1, 2), Node(1, 0, 3), Node(2, 0, 4, 5)] });
        // The second run grew by a block and a run was added under the third.
        var grown = new SnapshotParts(snapshot with { Changes = snapshot.Changes + 1, PrefixTree = [Node(0, -1, 1, 2), Node(1, 0, 3, 6), Node(2, 0, 4, 5), Node(3, 2, 7)] });
        var delta = JsonNode.Parse(grown.WriteDelta(before))!;
        Assert.Equal(4, delta["prefix_tree_length"]!.GetValue<int>());
        Assert.Equal("""[[1,[{"id":1,"parent":0,"chain":0,"blocks":[3,6],"hits":0,"held":0,"orphaned":false}]],[3,[{"id":3,"parent":2,"chain":0,"blocks":[7],"hits":0,"held":0,"orphaned":false}]]]""",
            delta["prefix_tree_runs"]!.ToJsonString());
        Assert.Null(delta["prefix_tree"]);
        // Back again: the list is cut to three and the second run rewritten.
        var shrunk = JsonNode.Parse(new SnapshotParts(snapshot with { Changes = snapshot.Changes + 2, PrefixTree = [Node(0, -1, 1, 2), Node(1, 0, 3), Node(2, 0, 4, 5)] }).WriteDelta(grown))!;
        Assert.Equal(3, shrunk["prefix_tree_length"]!.GetValue<int>());
        Assert.Equal("""[[1,[{"id":1,"parent":0,"chain":0,"blocks":[3],"hits":0,"held":0,"orphaned":false}]]]""", shrunk["prefix_tree_runs"]!.ToJsonString());
        // An unchanged tree is left out.
        var same = JsonNode.Parse(new SnapshotParts(snapshot with { Changes = snapshot.Changes + 3, PrefixTree = [Node(0, -1, 1, 2), Node(1, 0, 3), Node(2, 0, 4, 5)] }).WriteDelta(before))!;
        Assert.Null(same["prefix_tree_runs"]);
    }

    [Theory]
    [InlineData("........", "........", "[]")]
    [InlineData("........", "uu......", """[[0,"uu"]]""")]
    // Unchanged cells shorter than the gap between two changes join one run; a longer gap starts another.
    [InlineData("....................", "..u..s..............", """[[2,"u..s"]]""")]
    [InlineData("....................", "u.........s........c", """[[0,"u"],[10,"s"],[19,"c"]]""")]
    [InlineData("ucsuuu", "......", """[[0,"......"]]""")]
    // A map of another length (a pool never changes size) comes whole.
    [InlineData("...", "uu", """[[0,"uu"]]""")]
    public void MapRunsAreTheChangedCells(string before, string now, string runs)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            SnapshotParts.WriteMapRuns(w, before, now);
            w.WriteEndObject();
        }
        Assert.Equal($$"""{"map_runs":{{runs}}}""", Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    [Fact]
    public void AnIntervalBelowTheMinimumIsRefusedByName()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ServerOptions { InspectorInterval = TimeSpan.FromMilliseconds(20) }.Validate());
        Assert.Equal(nameof(ServerOptions.InspectorInterval), e.ParamName);
        new ServerOptions { InspectorInterval = ServerOptions.MinInspectorInterval }.Validate();
    }
}
