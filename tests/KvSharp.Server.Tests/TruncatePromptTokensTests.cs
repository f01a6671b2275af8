using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>
/// vLLM's truncate_prompt_tokens: a completion's prompt (text, ids, each of a list) and a chat's rendered prompt keep
/// their last k tokens (-1: as many as the context holds with one to generate), giving what those tokens sent alone
/// give; an echo shows the kept tokens; bad values are refused by name. Before, the field was ignored, so a prompt was
/// answered whole although the client asked for its end only.
/// </summary>
public class TruncatePromptTokensTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static int[] Ids(JsonElement tokens) => [.. tokens.EnumerateArray().Select(t => t.GetInt32())];

    private async Task<int[]> TokenizeAsync(string text)
    {
        var (_, body) = await server.PostAsync("/tokenize", new JsonObject { ["content"] = text, ["add_special"] = true }, TestContext.Current.CancellationToken);
        return Ids(body.GetProperty("tokens"));
    }

    private static JsonArray Array(IEnumerable<int> ids) => new([.. ids.Select(t => (JsonNode)t)]);

    [Fact]
    public async Task ACompletionKeepsItsPromptsLastTokensAndAnswersAsThemAlone()
    {
        var ct = TestContext.Current.CancellationToken;
        const string text = "Once upon a time there was a little girl named Lily. She liked to play in the park with her red ball every day.";
        int[] ids = await TokenizeAsync(text);
        Assert.True(ids.Length > 20, $"{ids.Length} tokens");
        var alone = await server.CompleteAsync(new JsonObject { ["prompt"] = Array(ids[^12..]), ["max_tokens"] = 8, ["temperature"] = 0 }, ct);
        foreach (JsonNode prompt in new JsonNode[] { text, Array(ids) })
        {
            var cut = await server.CompleteAsync(new JsonObject { ["prompt"] = prompt.DeepClone(), ["max_tokens"] = 8, ["temperature"] = 0, ["truncate_prompt_tokens"] = 12 }, ct);
            Assert.Equal(ServerFixture.Text(alone), ServerFixture.Text(cut));
            Assert.Equal(12, cut.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        }
        // Each prompt of a list is cut; a short one is left as it is; an echo shows the tokens kept.
        var list = await server.CompleteAsync(new JsonObject
        {
            ["prompt"] = new JsonArray(text, "Hi"), ["max_tokens"] = 1, ["temperature"] = 0, ["truncate_prompt_tokens"] = 12, ["echo"] = true,
        }, ct);
        var (_, kept) = await server.PostAsync("/detokenize", new JsonObject { ["tokens"] = Array(ids[^12..]) }, ct);
        Assert.StartsWith(kept.GetProperty("content").GetString()!, ServerFixture.Text(list, 0));
        Assert.StartsWith("Hi", ServerFixture.Text(list, 1));
        Assert.Equal(12 + (await TokenizeAsync("Hi")).Length, list.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AChatsRenderedPromptIsCutFromTheLeft()
    {
        var ct = TestContext.Current.CancellationToken;
        var chat = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me a long story about a dog and a cat who went to the park." }),
            ["max_tokens"] = 6, ["temperature"] = 0, ["truncate_prompt_tokens"] = 10,
        };
        var (status, cut) = await server.PostAsync("/v1/chat/completions", chat, ct);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(10, cut.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        var (_, applied) = await server.PostAsync("/apply-template", new JsonObject { ["messages"] = chat["messages"]!.DeepClone() }, ct);
        int[] rendered = await TokenizeAsync(applied.GetProperty("prompt").GetString()!);
        var alone = await server.CompleteAsync(new JsonObject
        {
            ["prompt"] = Array(rendered[^10..]), ["max_tokens"] = 6, ["temperature"] = 0,
            ["stop"] = new JsonArray([.. server.Server.ChatTemplate.StopStrings.Select(s => (JsonNode)s)]),
        }, ct);
        Assert.Equal(ServerFixture.Text(alone), cut.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        // -1: as much as the context holds with one token to generate, which this short prompt is whole.
        chat["truncate_prompt_tokens"] = -1;
        var (_, whole) = await server.PostAsync("/v1/chat/completions", chat, ct);
        Assert.Equal(rendered.Length, whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        await server.WaitForNoBlocksAsync();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    [InlineData(513)]
    public async Task AValueOutsideOneToTheContextIsRefusedByName(int k)
    {
        var ct = TestContext.Current.CancellationToken;
        foreach (var (path, body) in new[]
        {
            ("/v1/completions", new JsonObject { ["prompt"] = "Once upon a time", ["truncate_prompt_tokens"] = k }),
            ("/v1/chat/completions", new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }), ["truncate_prompt_tokens"] = k }),
        })
        {
            var (status, error) = await server.PostAsync(path, body, ct);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("truncate_prompt_tokens", error.GetProperty("error").GetProperty("param").GetString());
        }
    }
}
