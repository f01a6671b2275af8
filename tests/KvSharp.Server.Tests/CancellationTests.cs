using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>One running sequence at a time, one more queued, and a context long enough for requests that would take minutes.</summary>
public sealed class SmallQueueFixture : ServerFixture
{
    public const int Endless = 32000;
    protected override ServerOptions Options => base.Options with
    {
        MaxQueue = 1,
        Engine = new EngineOptions { ContextLength = 32768, MaxRunningSequences = 1 },
    };

    /// <summary>A streaming request that would run for minutes, its headers received (so it is in the engine).</summary>
    public async Task<HttpResponseMessage> OpenEndlessStreamAsync(string prompt, CancellationToken ct)
    {
        var body = new JsonObject { ["prompt"] = prompt, ["max_tokens"] = Endless, ["ignore_eos"] = true, ["temperature"] = 0, ["stream"] = true };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }
}

/// <summary>Back-pressure and clients that go away: 429 past the queue; a disconnect cancels the request and frees its blocks at once.</summary>
public class CancellationTests(SmallQueueFixture server) : IClassFixture<SmallQueueFixture>
{
    [Fact]
    public async Task AFullQueueAnswers429AndFreesAsSoonAsTheClientsLeave()
    {
        var ct = TestContext.Current.CancellationToken;
        using var running = await server.OpenEndlessStreamAsync("Once upon a time", ct);
        using var queued = await server.OpenEndlessStreamAsync("The dog ran", ct);
        var (status, json) = await server.PostAsync("/v1/completions", new JsonObject { ["prompt"] = "Tom", ["max_tokens"] = 2 }, ct);
        BadRequestTests.AssertError(HttpStatusCode.TooManyRequests, "rate_limit_exceeded", null, status, json);
        Assert.Equal(1, server.Server.Metrics.RefusedRequests);

        running.Dispose();
        queued.Dispose();
        await server.WaitForNoBlocksAsync();
        var ok = await server.CompleteAsync(new JsonObject { ["prompt"] = "Tom", ["max_tokens"] = 2 }, ct);
        Assert.Equal(2, ok.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task AStreamingClientThatDisconnectsCancelsItsRequestAndFreesItsBlocks()
    {
        var ct = TestContext.Current.CancellationToken;
        long disconnectedBefore = server.Server.Metrics.DisconnectedRequests;
        long generatedBefore = server.Engine.Metrics.GeneratedTokens;
        using (var response = await server.OpenEndlessStreamAsync("Lily saw a bird", ct))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            var first = await ServerSentEventsReader.ReadFirstAsync(reader, ct);
            Assert.Equal("text_completion", first.GetProperty("object").GetString());
            Assert.True(server.Engine.Pool.UsedBlocks > 0);
        } // closes the connection mid-stream
        await server.WaitForNoBlocksAsync();
        Assert.Equal(disconnectedBefore + 1, server.Server.Metrics.DisconnectedRequests);
        Assert.True(server.Engine.Metrics.GeneratedTokens - generatedBefore < SmallQueueFixture.Endless);
        server.Engine.Pool.Verify();
    }

    [Fact]
    public async Task ANonStreamingClientThatGivesUpCancelsItsRequest()
    {
        var ct = TestContext.Current.CancellationToken;
        long disconnectedBefore = server.Server.Metrics.DisconnectedRequests;
        using var giveUp = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var body = new JsonObject { ["prompt"] = "Tom was sad", ["max_tokens"] = SmallQueueFixture.Endless, ["ignore_eos"] = true };
        var call = server.PostAsync("/v1/completions", body, giveUp.Token);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (server.Engine.Pool.UsedBlocks == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the request never started");
            await Task.Delay(5, ct);
        }
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await server.WaitForNoBlocksAsync();
        Assert.Equal(disconnectedBefore + 1, server.Server.Metrics.DisconnectedRequests);
    }
}
