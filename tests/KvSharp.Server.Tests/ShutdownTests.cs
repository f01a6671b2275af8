using KvSharp.Engine;

namespace KvSharp.Server.Tests;

public sealed class LongContextFixture : ServerFixture
{
    protected override ServerOptions Options => base.Options with { Engine = new EngineOptions { ContextLength = 32768 } };
}

/// <summary>Stopping the host (what Ctrl-C does) cancels running requests: their streams end with an error event, their blocks go back.</summary>
public class ShutdownTests(LongContextFixture server) : IClassFixture<LongContextFixture>
{
    [Fact]
    public async Task StoppingCancelsRunningStreamsCleanly()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = new System.Text.Json.Nodes.JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 32000, ["ignore_eos"] = true, ["stream"] = true };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        await ServerSentEventsReader.ReadFirstAsync(reader, ct);

        var stopping = server.Server.StopAsync(ct);
        string? lastEvent = null;
        bool done = false;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line == "data: [DONE]") done = true;
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) lastEvent = line;
        }
        Assert.True(done);
        Assert.Contains("\"server_shutting_down\"", lastEvent);
        await stopping.WaitAsync(TimeSpan.FromSeconds(20), ct);
        Assert.Equal(0, server.Engine.Pool.UsedBlocks);
        server.Engine.Pool.Verify();
    }
}
