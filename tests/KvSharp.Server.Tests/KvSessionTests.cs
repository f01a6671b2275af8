using System.Net;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>
/// POST /v1/kv/sessions/{id}/save and /restore: a conversation's KV saved by id comes back after it left RAM and the
/// next turn adopts it with the same reply; ids that could leave the directory, unknown ids, another tenant's salt and
/// a server without --session-dir are refused with clear errors.
/// </summary>
public class KvSessionTests(KvSessionTests.Fixture server) : IClassFixture<KvSessionTests.Fixture>
{
    public sealed class Fixture : ServerFixture
    {
        public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("kvsharp-sessions-").FullName;

        protected override ServerOptions Options => new()
        {
            Port = 0,
            SessionDirectory = Directory,
            Engine = new EngineOptions { ContextLength = 256, BlockSize = 4, BlockCount = 24 },
        };

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private static JsonObject Chat(string user, string? salt = null)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }),
            ["max_tokens"] = 6,
            ["temperature"] = 0,
        };
        if (salt != null) body["cache_salt"] = salt;
        return body;
    }

    private const string Conversation = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog.";

    private static string Reply(System.Text.Json.JsonElement completion) =>
        completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

    [Fact]
    public async Task ASavedConversationComesBackAfterLeavingRamWithTheSameReply()
    {
        var ct = TestContext.Current.CancellationToken;
        var (status, first) = await server.PostAsync("/v1/chat/completions", Chat(Conversation), ct);
        Assert.Equal(HttpStatusCode.OK, status);
        var (saveStatus, saved) = await server.PostAsync("/v1/kv/sessions/lily-1/save", Chat(Conversation), ct);
        Assert.Equal(HttpStatusCode.OK, saveStatus);
        Assert.True(saved.GetProperty("tokens").GetInt32() > 16, saved.ToString());
        Assert.True(File.Exists(Path.Combine(server.Directory, "lily-1.kvprefix")));

        // Other conversations push it out of the 24-block pool.
        foreach (var other in new[] { "The dog ran to the big red barn and saw a cow eating grass in the field.", "Tom had a little car that he liked to drive around the garden every day." })
            await server.PostAsync("/v1/chat/completions", Chat(other), ct);

        var (restoreStatus, restored) = await server.PostAsync("/v1/kv/sessions/lily-1/restore", new JsonObject(), ct);
        Assert.Equal(HttpStatusCode.OK, restoreStatus);
        Assert.Equal(saved.GetProperty("tokens").GetInt32(), restored.GetProperty("tokens").GetInt32());
        var (_, again) = await server.PostAsync("/v1/chat/completions", Chat(Conversation), ct);
        Assert.True(again.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() > 16, again.ToString());
        Assert.Equal(Reply(first), Reply(again));
    }

    [Theory]
    [InlineData("a.b")]
    [InlineData("x%2F..%2F..%2Fetc")]
    [InlineData("with%20space")]
    [InlineData("an-id-that-is-far-too-long-an-id-that-is-far-too-long-an-id-that-is-far-too-long-an-id-that-is-far-too-long-an-id-that-is-far-too-long")]
    public async Task IdsThatCouldNameAnotherPathAreRefused(string id)
    {
        var ct = TestContext.Current.CancellationToken;
        var (status, body) = await server.PostAsync($"/v1/kv/sessions/{id}/save", Chat("hi"), ct);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("must be 1 to 128 letters, digits", body.GetProperty("error").GetProperty("message").GetString());
        Assert.Empty(System.IO.Directory.GetFiles(server.Directory, "*.tmp-*"));
    }

    [Fact]
    public async Task AnUnknownIdIs404AndAnotherTenantsSaltIs422()
    {
        var ct = TestContext.Current.CancellationToken;
        var (missing, _) = await server.PostAsync("/v1/kv/sessions/never-saved/restore", new JsonObject(), ct);
        Assert.Equal(HttpStatusCode.NotFound, missing);

        await server.PostAsync("/v1/chat/completions", Chat(Conversation, salt: "alice"), ct);
        var (saved, _) = await server.PostAsync("/v1/kv/sessions/alice-1/save", Chat(Conversation, salt: "alice"), ct);
        Assert.Equal(HttpStatusCode.OK, saved);
        var (status, body) = await server.PostAsync("/v1/kv/sessions/alice-1/restore", new JsonObject { ["cache_salt"] = "mallory" }, ct);
        Assert.Equal((HttpStatusCode)422, status);
        Assert.Contains("cannot be restored", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("garbage", "not a KvSharp prefix file")]
    [InlineData("truncated", "truncated")]
    public async Task ADamagedFileIs422WithTheReasonNotA500(string damage, string reason)
    {
        var ct = TestContext.Current.CancellationToken;
        await server.PostAsync("/v1/chat/completions", Chat(Conversation), ct);
        Assert.Equal(HttpStatusCode.OK, (await server.PostAsync($"/v1/kv/sessions/whole-{damage}/save", Chat(Conversation), ct)).Status);
        byte[] whole = File.ReadAllBytes(Path.Combine(server.Directory, $"whole-{damage}.kvprefix"));
        File.WriteAllBytes(Path.Combine(server.Directory, $"{damage}.kvprefix"), damage == "garbage" ? "not a prefix file"u8.ToArray() : whole[..(whole.Length / 2)]);
        var (status, body) = await server.PostAsync($"/v1/kv/sessions/{damage}/restore", new JsonObject(), ct);
        Assert.Equal((HttpStatusCode)422, status);
        string message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.StartsWith($"session '{damage}' cannot be restored: ", message);
        Assert.Contains(reason, message);
    }
}

/// <summary>Without --session-dir the session endpoints say how to turn them on.</summary>
public class KvSessionsOffTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task WithoutASessionDirectoryTheEndpointsAre404WithTheOptionToUse()
    {
        var (status, body) = await server.PostAsync("/v1/kv/sessions/x/restore", new JsonObject(), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("--session-dir", body.GetProperty("error").GetProperty("message").GetString());
    }
}
