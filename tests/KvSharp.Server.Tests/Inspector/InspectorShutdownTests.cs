using KvSharp.Server.Inspector;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>A server of its own, since the test stops it.</summary>
public sealed class InspectorStopFixture : ServerFixture;

/// <summary>An open inspector page does not hold the server up: stopping ends its event stream at once.</summary>
public class InspectorShutdownTests(InspectorStopFixture server) : IClassFixture<InspectorStopFixture>
{
    [Fact]
    public async Task StoppingEndsTheEventStream()
    {
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.GetAsync(InspectorEndpoints.EventsPath, HttpCompletionOption.ResponseHeadersRead, ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        await ServerSentEventsReader.ReadFirstAsync(reader, ct);

        // Kestrel would wait up to its shutdown timeout (30 s) for a stream that did not end by itself.
        var stopping = server.Server.StopAsync(ct);
        while (await reader.ReadLineAsync(ct) is not null) { }
        await stopping.WaitAsync(TimeSpan.FromSeconds(10), ct);
    }
}
