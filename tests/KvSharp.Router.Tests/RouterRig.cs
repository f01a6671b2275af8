using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Router;
using KvSharp.Server;

namespace KvSharp.Router.Tests;

/// <summary>
/// Real kvsharp serve replicas (in process, each its own stories260K and engine, on loopback ephemeral ports) behind a
/// real router, and a client of the router. Each test builds its own, so what one test kills or caches never
/// reaches another.
/// </summary>
public sealed class RouterRig : IAsyncDisposable
{
    public static string ModelPath => Path.Combine(TestPaths.RepoRoot, "models", "stories260K.gguf");

    private readonly List<LlmModel> _models = [];
    public List<KvSharpServer> Replicas { get; } = [];
    public KvSharpRouter Router { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    /// <param name="extraReplicas">Addresses added after the real replicas (e.g. a fake or a dead one).</param>
    public static async Task<RouterRig> StartAsync(int replicas, Func<RouterOptions, RouterOptions>? configure = null, params Uri[] extraReplicas)
    {
        var rig = new RouterRig();
        for (int i = 0; i < replicas; i++)
        {
            var model = LlmModel.Load(ModelPath, new ModelLoadOptions { Threads = 1 });
            rig._models.Add(model);
            var server = KvSharpServer.Create(model, new ServerOptions { Port = 0, Engine = new EngineOptions { ContextLength = 512 } });
            await server.StartAsync();
            rig.Replicas.Add(server);
        }
        var options = new RouterOptions
        {
            Port = 0,
            Replicas = [.. rig.Replicas.Select(s => s.BaseAddress), .. extraReplicas],
            HealthInterval = TimeSpan.FromMilliseconds(200),
            // Generous: on a loaded CI machine a slow probe must not take a live replica out.
            HealthTimeout = TimeSpan.FromSeconds(30),
        };
        rig.Router = KvSharpRouter.Create(configure?.Invoke(options) ?? options);
        await rig.Router.StartAsync();
        rig.Client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = rig.Router.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        return rig;
    }

    /// <summary>The replica-name header value of replica <paramref name="i"/> (scheme://host:port).</summary>
    public string Name(int i) => Replicas[i].BaseAddress.GetLeftPart(UriPartial.Authority);

    /// <summary>A request that must succeed: its body, and the replica that answered (x-kvsharp-replica).</summary>
    public async Task<(JsonElement Body, string Replica)> PostAsync(string path, JsonObject body, CancellationToken cancellation)
    {
        using var response = await Client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), cancellation);
        string text = await response.Content.ReadAsStringAsync(cancellation);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        return (JsonDocument.Parse(text).RootElement.Clone(), string.Join(",", response.Headers.GetValues("x-kvsharp-replica")));
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        if (Router != null) await Router.DisposeAsync();
        foreach (var s in Replicas) await s.DisposeAsync();
        foreach (var m in _models) m.Dispose();
    }
}
