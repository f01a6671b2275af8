using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Net.Sockets;

namespace KvSharp.Router.Tests;

/// <summary>
/// A replica that dies after its stream has started cannot be replaced (the client has tokens already), so the
/// client must see an error, never a stream that merely looks short: cut between events, the stream ends with an
/// error event in OpenAI's error shape and no [DONE] (as kvsharp serve ends a stream it cancels); cut inside an
/// event, the client's connection is reset. The replica here is a stand-in that streams two events and then drops
/// its connection, as a crashed process would, so the failure happens at a known point.
/// </summary>
public class MidStreamFailureTests
{
    [Fact]
    public async Task AStreamCutBetweenEventsEndsWithAnErrorEventAndNoDone()
    {
        var (events, ended, replica, midStreamFailures) = await StreamThroughCrashingReplicaAsync(cutInsideEvent: false);

        Assert.Null(ended);
        Assert.Equal(3, events.Count);
        for (int i = 0; i < 2; i++) // the replica's own events pass through unchanged
            Assert.Equal($"tok{i}", JsonDocument.Parse(events[i]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        var error = JsonDocument.Parse(events[2]).RootElement.GetProperty("error");
        Assert.Equal("replica_failed", error.GetProperty("code").GetString());
        Assert.Contains(replica, error.GetProperty("message").GetString());
        Assert.Equal(1, midStreamFailures);
    }

    [Fact]
    public async Task AStreamCutInsideAnEventResetsTheClientsConnection()
    {
        var (events, ended, _, midStreamFailures) = await StreamThroughCrashingReplicaAsync(cutInsideEvent: true);

        // Not ended as a complete response: the read failed, or (reset before the headers were read) the send did.
        Assert.True(ended is IOException || ended is HttpRequestException { InnerException: IOException }, $"ended with {ended}");
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal(1, midStreamFailures);
    }

    /// <summary>
    /// A streamed completion through a router whose one replica crashes: the data of each whole event line, how reading
    /// ended (null: the response ended normally), the replica's name, and the mid-stream failures the router counted.
    /// </summary>
    private static async Task<(List<string> Events, Exception? Ended, string Replica, long MidStreamFailures)> StreamThroughCrashingReplicaAsync(bool cutInsideEvent)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var replica = await CrashingReplica.StartAsync(cutInsideEvent);
        await using var rig = await RouterRig.StartAsync(0, o => o with { HealthInterval = TimeSpan.FromHours(1) }, replica.Address);
        var body = new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 16, ["stream"] = true };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        var events = new List<string>();
        // A reset may reach the client before it has read even the headers (a reset discards unread bytes): then
        // sending fails, which is as much an error to the client as a failed read.
        var ended = await Record.ExceptionAsync(async () =>
        {
            using var response = await rig.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
                if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line["data: ".Length..]);
        });

        // The router counts the failure when its forwarding returns, which may be just after the client saw the end.
        var counted = rig.Router.Replicas.All[0];
        for (var deadline = DateTime.UtcNow.AddSeconds(10); counted.MidStreamFailures == 0 && DateTime.UtcNow < deadline;) await Task.Delay(10, ct);
        return (events, ended, replica.Address.GetLeftPart(UriPartial.Authority), counted.MidStreamFailures);
    }

    /// <summary>
    /// A replica that streams two completion chunks (and, if asked, the start of a third) and then closes its connection
    /// mid-response. Raw TCP, because a crash must be a plain end of the connection after every byte sent has arrived
    /// (an orderly close): Kestrel's abort is a reset, which may discard bytes still unread and make the test's cut
    /// point depend on timing.
    /// </summary>
    private sealed class CrashingReplica : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly bool _cutInsideEvent;
        private readonly Task _loop;

        private CrashingReplica(bool cutInsideEvent)
        {
            _cutInsideEvent = cutInsideEvent;
            _listener.Start();
            _loop = AcceptAsync();
        }

        public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

        public static Task<CrashingReplica> StartAsync(bool cutInsideEvent) => Task.FromResult(new CrashingReplica(cutInsideEvent));

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = ServeAsync(client);
                }
            }
            catch (OperationCanceledException) { }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            var reader = new StreamReader(stream, Encoding.ASCII);
            string requestLine = await reader.ReadLineAsync() ?? "";
            int length = 0;
            while (await reader.ReadLineAsync() is { Length: > 0 } header)
                if (header.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) length = int.Parse(header["Content-Length:".Length..].Trim());
            var body = new char[length];
            for (int read = 0; read < length;) read += await reader.ReadAsync(body.AsMemory(read)); // all of it: unread input would turn the close into a reset
            if (requestLine.StartsWith("GET /health", StringComparison.Ordinal))
            {
                await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"u8.ToArray());
                return;
            }
            var response = new StringBuilder("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
            var events = new List<string> { "data: {\"choices\":[{\"index\":0,\"text\":\"tok0\"}]}\n\n", "data: {\"choices\":[{\"index\":0,\"text\":\"tok1\"}]}\n\n" };
            if (_cutInsideEvent) events.Add("data: {\"choi");
            foreach (string e in events) response.Append($"{Encoding.UTF8.GetByteCount(e):x}\r\n{e}\r\n");
            await stream.WriteAsync(Encoding.UTF8.GetBytes(response.ToString()));
            // The crash: no last chunk; an orderly close once the router has every byte.
            client.Client.Shutdown(SocketShutdown.Send);
            while (await stream.ReadAsync(new byte[256]) > 0) { }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            await _loop;
            _stop.Dispose();
        }
    }
}
