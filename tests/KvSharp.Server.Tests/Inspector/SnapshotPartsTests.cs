using System.Buffers;
using System.Text;
using System.Text.Json;
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
