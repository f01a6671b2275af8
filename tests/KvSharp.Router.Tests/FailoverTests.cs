using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Router.Tests;

/// <summary>
/// Replicas that die: a request whose response has not started is served by another replica, so the client never
/// sees the failure, and the dead replica leaves the rotation until its health check passes again.
/// </summary>
public class FailoverTests
{
    private const int MaxTokens = 6;

    private static JsonObject Completion(int user, int turn) => new()
    {
        ["prompt"] = $"User {user} asks, turn {turn}: once upon a time there was a little girl named Lily who liked to play.",
        ["max_tokens"] = MaxTokens,
        ["ignore_eos"] = true,
    };

    /// <summary>Complete: a choice with text and a finish reason, and exactly the tokens asked for.</summary>
    private static void AssertComplete(JsonElement response)
    {
        var choice = response.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(MaxTokens, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task StoppingAReplicaMidRunLosesNoRequest()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(3);
        int completed = 0;
        var stopped = new TaskCompletionSource();
        async Task User(int user)
        {
            for (int turn = 0; turn < 8; turn++)
            {
                AssertComplete((await rig.PostAsync("/v1/completions", Completion(user, turn), ct)).Body);
                if (Interlocked.Increment(ref completed) == 6) stopped.TrySetResult();
            }
        }
        var users = Enumerable.Range(0, 4).Select(User).ToArray();
        await stopped.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
        // Stopped while requests run: the ones it holds are cancelled (a 503 or a dropped connection), which the router must hide.
        await rig.Replicas[1].StopAsync(ct);
        string dead = rig.Name(1);
        await Task.WhenAll(users);
        Assert.Equal(32, completed);
        // Out of rotation: by a failed request, a probe, or at the latest this one (the run may end before either).
        await rig.Router.CheckHealthAsync(ct);
        var status = await rig.Client.GetStringAsync("/router/replicas", ct);
        var deadEntry = JsonDocument.Parse(status).RootElement.GetProperty("replicas").EnumerateArray().Single(r => r.GetProperty("url").GetString()!.StartsWith(dead));
        Assert.False(deadEntry.GetProperty("healthy").GetBoolean(), status);
    }

    [Fact]
    public async Task AReplicaThatCannotBeReachedIsSkippedAndTakenOutOfRotation()
    {
        var ct = TestContext.Current.CancellationToken;
        using var deadPort = new DeadPort();
        var deadAddress = deadPort.Address;
        // One probe at start, then none: the dead replica is out from the first probe or the first request that fails on it.
        await using var rig = await RouterRig.StartAsync(1, o => o with { HealthInterval = TimeSpan.FromHours(1) }, deadAddress);
        for (int i = 0; i < 6; i++)
        {
            var (response, replica) = await rig.PostAsync("/v1/completions", Completion(i, 0), ct);
            AssertComplete(response);
            Assert.Equal(rig.Name(0), replica);
        }
        var deadReplica = rig.Router.Replicas.All[1];
        Assert.False(deadReplica.Healthy);
        Assert.Equal(0, deadReplica.Requests);
    }

    [Fact]
    public async Task AHealthyReplicaComesBackIntoRotation()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var rig = await RouterRig.StartAsync(2, o => o with { HealthInterval = TimeSpan.FromHours(1) });
        var replica = rig.Router.Replicas.All[0];
        Assert.True(replica.Healthy, replica.DownReason);
        var port = rig.Replicas[0].BaseAddress.Port;
        await rig.Replicas[0].StopAsync(ct);
        await rig.Router.CheckHealthAsync(ct);
        Assert.False(replica.Healthy);
        Assert.True(rig.Router.Replicas.All[1].Healthy);
        // Every request now goes to the other replica.
        for (int i = 0; i < 3; i++) Assert.Equal(rig.Name(1), (await rig.PostAsync("/v1/completions", Completion(i, 0), ct)).Replica);

        await using var again = await Revive(port);
        await rig.Router.CheckHealthAsync(ct);
        Assert.True(replica.Healthy, $"the revived replica on port {port} is still out: {replica.DownReason}");
    }

    [Fact]
    public void AProbeThatBeganBeforeTheLastAnsweredOneCannotTakeTheReplicaOut()
    {
        var replica = new KvSharp.Router.Replicas.Replica(0, new Uri("http://127.0.0.1:1"));
        Assert.Equal(true, replica.EndProbe(replica.BeginProbe(), "GET /health failed: refused"));
        // One probe is slow to fail (it reached the replica while it stopped); a later one finds it back.
        long slow = replica.BeginProbe(), later = replica.BeginProbe();
        Assert.Equal(true, replica.EndProbe(later, null));
        Assert.Null(replica.EndProbe(slow, "GET /health failed: connection reset"));
        Assert.True(replica.Healthy, replica.DownReason);
        // A probe that begins after it still takes it out.
        Assert.Equal(true, replica.EndProbe(replica.BeginProbe(), "GET /health answered 503"));
        Assert.False(replica.Healthy);
    }

    [Fact]
    public async Task WithNoReplicaInRotationTheRouterTriesThemAnywayAndThenSays502()
    {
        var ct = TestContext.Current.CancellationToken;
        using DeadPort first = new(), second = new();
        var dead = new[] { first.Address, second.Address };
        await using var rig = await RouterRig.StartAsync(0, o => o with { HealthInterval = TimeSpan.FromHours(1) }, dead);
        await rig.Router.CheckHealthAsync(ct);
        using var health = await rig.Client.GetAsync("/health", ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        using var response = await rig.Client.PostAsync("/v1/completions", new StringContent(Completion(0, 0).ToJsonString()), ct);
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(2, rig.Router.Replicas.All.Sum(r => r.Retries));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("error");
        Assert.Equal("replicas_unavailable", error.GetProperty("code").GetString());
        // What went wrong, not only YARP's stage name ("Request").
        Assert.Matches("(?i)refused", error.GetProperty("message").GetString());
    }

    /// <summary>A fresh server on the port a stopped replica had (the router knows replicas by address).</summary>
    private static async Task<Revived> Revive(int port)
    {
        var model = LlmModel.Load(RouterRig.ModelPath, new ModelLoadOptions { Threads = 1 });
        var server = KvSharp.Server.KvSharpServer.Create(model, new KvSharp.Server.ServerOptions { Port = port });
        await server.StartAsync();
        return new Revived(model, server);
    }

    private sealed record Revived(LlmModel Model, KvSharp.Server.KvSharpServer Server) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            Model.Dispose();
        }
    }

    /// <summary>A loopback port nothing listens on (bound, then released).</summary>
    /// <summary>
    /// A loopback address where nothing answers: the port stays bound (never listening, so a connection is refused)
    /// until disposed. A port merely found free and let go could be taken at once by a server another test starts on
    /// port 0, which would then answer the "dead" replica's health checks.
    /// </summary>
    private sealed class DeadPort : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        public DeadPort() => _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_socket.LocalEndPoint!).Port}");

        public void Dispose() => _socket.Dispose();
    }
}
