using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Server;

namespace KvSharp.Server.Tests;

/// <summary>
/// A real server on 127.0.0.1 (an ephemeral port) over stories260K, and an HttpClient for it; one per test class, so
/// each class's block counts and prefix cache are its own. A second copy of the model serves the tests' references
/// (an <see cref="InferenceSession"/>), never sharing state with the engine under test.
/// </summary>
public class ServerFixture : IAsyncLifetime
{
    public LlmModel Model { get; private set; } = null!;
    public LlmModel ReferenceModel { get; private set; } = null!;
    public KvSharpServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    protected virtual ServerOptions Options => new() { Port = 0, Engine = new EngineOptions { ContextLength = 512 } };

    public LlmEngine Engine => Server.Engine;

    public async ValueTask InitializeAsync()
    {
        Model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        ReferenceModel = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        Server = KvSharpServer.Create(Model, Options);
        await Server.StartAsync();
        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(Server.BaseAddress.Host)));
        // No draining of an abandoned response: disposing one mid-stream closes the connection at once, as a client that goes away does.
        Client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public virtual async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
        ReferenceModel.Dispose();
        GC.SuppressFinalize(this);
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string path, JsonObject body, CancellationToken cancellation = default) =>
        await SendAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), cancellation);

    public async Task<(HttpStatusCode Status, JsonElement Body)> GetAsync(string path, CancellationToken cancellation = default)
    {
        using var response = await Client.GetAsync(path, cancellation);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellation)).RootElement.Clone());
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(string path, HttpContent content, CancellationToken cancellation = default)
    {
        using var response = await Client.PostAsync(path, content, cancellation);
        string text = await response.Content.ReadAsStringAsync(cancellation);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>
    /// What the reference model generates after <paramref name="prompt"/> (BOS first) in a fresh session: what a
    /// completion with the same options must give, its generated token ids and its stats.
    /// </summary>
    public (string Text, int[] Tokens, GenerationStats Stats) Reference(string prompt, GenerationOptions options)
    {
        using var session = ReferenceModel.CreateSession(new SessionOptions { ContextLength = 512 });
        var tokens = ReferenceModel.Tokenizer.Encode(prompt, addSpecial: true, parseSpecial: false);
        string text = string.Concat(session.GenerateTokens(tokens, options));
        return (text, [.. session.Tokens.Skip(tokens.Length)], session.LastStats!);
    }

    /// <summary>A non-streaming completion that must succeed.</summary>
    public async Task<JsonElement> CompleteAsync(JsonObject body, CancellationToken cancellation = default)
    {
        var (status, json) = await PostAsync("/v1/completions", body, cancellation);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {json}");
        return json;
    }

    /// <summary>A streaming completion, read to its end: every event before <c>data: [DONE]</c>.</summary>
    public async Task<List<JsonElement>> StreamAsync(JsonObject body, CancellationToken cancellation = default)
    {
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return await ServerSentEventsReader.ReadAllAsync(response, cancellation);
    }

    /// <summary>Waits (a bounded while) until the engine holds no blocks.</summary>
    public async Task WaitForNoBlocksAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (Engine.Pool.UsedBlocks != 0 || Server.Service.InFlight != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"still {Engine.Pool.UsedBlocks} blocks held and {Server.Service.InFlight} requests in flight");
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Two usages count the same prompt, completion and total tokens. cached_tokens is left out: a repeated request may
    /// find its own earlier blocks in the prefix cache (or an earlier test's), so it depends on the order tests run in.
    /// </summary>
    public static void AssertSameCounts(JsonElement expected, JsonElement actual)
    {
        foreach (string count in new[] { "prompt_tokens", "completion_tokens", "total_tokens" })
            Assert.Equal(expected.GetProperty(count).GetInt32(), actual.GetProperty(count).GetInt32());
    }

    /// <summary>The text of choice <paramref name="index"/> of a completion.</summary>
    public static string Text(JsonElement completion, int index = 0) => Choice(completion, index).GetProperty("text").GetString()!;

    /// <summary>A /v1/responses response's text: its message items' parts, joined.</summary>
    public static string OutputText(JsonElement response) => string.Concat(response.GetProperty("output").EnumerateArray()
        .Where(i => i.GetProperty("type").GetString() == "message")
        .SelectMany(i => i.GetProperty("content").EnumerateArray()).Select(c => c.GetProperty("text").GetString()));

    public static JsonElement Choice(JsonElement completion, int index) =>
        completion.GetProperty("choices").EnumerateArray().Single(c => c.GetProperty("index").GetInt32() == index);

    /// <summary>The text each choice streamed, concatenated in order.</summary>
    public static string StreamedText(IEnumerable<JsonElement> events, int index = 0) => string.Concat(
        events.SelectMany(e => e.GetProperty("choices").EnumerateArray())
            .Where(c => c.GetProperty("index").GetInt32() == index)
            .Select(c => c.GetProperty("text").GetString()));
}
