using System.Net;
using System.Text.Json.Nodes;
using KvSharp.Cache.Policies;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>
/// The kv_policy request field: a windowed or H2O request streams and completes with what an <see cref="InferenceSession"/>
/// under the same policy writes, never touches the prefix cache (cached_tokens 0), and bad values are a 400 naming
/// the field on both endpoints.
/// </summary>
public class KvPolicyRequestTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static JsonObject Greedy(JsonNode prompt, int maxTokens, string? policy)
    {
        var body = new JsonObject { ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0 };
        if (policy != null) body["kv_policy"] = policy;
        return body;
    }

    [Theory]
    [InlineData("window:16")]
    [InlineData("sinks:4+window:12")]
    [InlineData("h2o:64")]
    [InlineData("h2o:16+recent:4")]
    // SnapKV compresses only a prompt longer than its budget, once, however the engine chunks it.
    [InlineData("snapkv:12+obs:4", "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big dog.")]
    public async Task WindowedRequestStreamsAndEqualsTheSessionWithTheSamePolicy(string policy, string prompt = "Once upon a time")
    {
        var ct = TestContext.Current.CancellationToken;
        using var session = server.ReferenceModel.CreateSession(new SessionOptions { ContextLength = 512, CachePolicy = KvCachePolicy.Parse(policy) });
        string expected = string.Concat(session.Generate(prompt, new GenerationOptions { MaxTokens = 120 }));
        using var full = server.ReferenceModel.CreateSession(new SessionOptions { ContextLength = 512 });
        // The window really changes what is written, so equality below is the policy's, not the full cache's.
        Assert.NotEqual(string.Concat(full.Generate(prompt, new GenerationOptions { MaxTokens = 120 })), expected);

        var events = await server.StreamAsync(Greedy(prompt, 120, policy), ct);
        Assert.Equal(expected, ServerFixture.StreamedText(events));
        Assert.NotNull(events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(expected, ServerFixture.Text(await server.CompleteAsync(Greedy(prompt, 120, policy), ct)));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task WindowedRequestsNeverUseThePrefixCache()
    {
        var ct = TestContext.Current.CancellationToken;
        // Token ids, so whole blocks of 16 fill: a full request publishes them, the next full one adopts them.
        var prompt = new JsonArray([1, 450, .. Enumerable.Range(0, 48).Select(i => (JsonNode)(300 + i))]);
        async Task<int> Cached(string? policy) =>
            (await server.CompleteAsync(Greedy(prompt.DeepClone(), 1, policy), ct))
            .GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.Equal(0, await Cached(null));
        Assert.True(await Cached("full") > 0);
        Assert.Equal(0, await Cached("window:32"));
        Assert.Equal(0, await Cached("sinks:4+window:16"));
        // The same prompt again under H2O: nothing adopted, and the full prefix it could have matched is still cached.
        Assert.Equal(0, await Cached("h2o:24"));
        Assert.Equal(0, await Cached("snapkv:24"));
        Assert.True(await Cached("full") > 0);
        await server.WaitForNoBlocksAsync();
    }

    [Theory]
    [InlineData("\"bogus\"", "invalid_value")]
    [InlineData("\"window:0\"", "invalid_value")]
    [InlineData("\"sinks:-1+window:8\"", "invalid_value")]
    [InlineData("\"window:513\"", "invalid_value")] // the fixture's context is 512
    [InlineData("\"sinks:8+window:505\"", "invalid_value")]
    [InlineData("\"snapkv:64+obs:65\"", "invalid_value")]
    [InlineData("\"h2o:513\"", "invalid_value")]
    [InlineData("\"h2o:8+recent:8\"", "invalid_value")]
    [InlineData("7", "invalid_type")]
    public async Task BadPoliciesAre400NamingTheField(string value, string code)
    {
        var ct = TestContext.Current.CancellationToken;
        foreach (var (path, body) in new[]
        {
            ("/v1/completions", $"{{\"prompt\": \"Once\", \"max_tokens\": 4, \"kv_policy\": {value}}}"),
            ("/v1/chat/completions", $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hi\"}}], \"max_tokens\": 4, \"kv_policy\": {value}}}"),
        })
        {
            var (status, json) = await server.SendAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"), ct);
            BadRequestTests.AssertError(HttpStatusCode.BadRequest, code, "kv_policy", status, json);
        }
    }

    [Theory]
    [InlineData("sinks:2+window:8")]
    [InlineData("h2o:16")]
    [InlineData("snapkv:16")]
    public async Task SinksOrScoredPoliciesWithSeveralChoicesAre400NamingTheField(string policy)
    {
        var body = Greedy("Once", 4, policy);
        body["n"] = 2;
        var (status, json) = await server.PostAsync("/v1/completions", body, TestContext.Current.CancellationToken);
        BadRequestTests.AssertError(HttpStatusCode.BadRequest, "invalid_value", "kv_policy", status, json);
    }

    [Fact]
    public async Task ChatRequestWithAWindowCompletes()
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me a story" }),
            ["max_tokens"] = 40,
            ["temperature"] = 0,
            ["kv_policy"] = "window:8",
        };
        var (status, json) = await server.PostAsync("/v1/chat/completions", body, TestContext.Current.CancellationToken);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {json}");
        Assert.Equal(0, json.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        await server.WaitForNoBlocksAsync();
    }
}

/// <summary>A server whose default policy (<c>kvsharp serve --kv-policy window:16</c>) is a window.</summary>
public sealed class WindowedServerFixture : ServerFixture
{
    protected override ServerOptions Options => base.Options with { Engine = base.Options.Engine with { CachePolicy = KvCachePolicy.SlidingWindow(16) } };
}

/// <summary>Requests without kv_policy get the server's default; kv_policy overrides it.</summary>
public class DefaultKvPolicyTests(WindowedServerFixture server) : IClassFixture<WindowedServerFixture>
{
    [Theory]
    [InlineData(null, "window:16")]
    [InlineData("full", "full")]
    public async Task RequestsWithoutAPolicyGetTheServersDefault(string? requested, string applied)
    {
        const string prompt = "Once upon a time";
        using var session = server.ReferenceModel.CreateSession(new SessionOptions { ContextLength = 512, CachePolicy = KvCachePolicy.Parse(applied) });
        string expected = string.Concat(session.Generate(prompt, new GenerationOptions { MaxTokens = 120 }));
        var body = new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 120, ["temperature"] = 0 };
        if (requested != null) body["kv_policy"] = requested;
        Assert.Equal(expected, ServerFixture.Text(await server.CompleteAsync(body, TestContext.Current.CancellationToken)));
        await server.WaitForNoBlocksAsync();
    }
}
