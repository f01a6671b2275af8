#pragma warning disable OPENAI001 // the SDK's Responses client is marked experimental
using System.ClientModel;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI.Responses;

namespace KvSharp.Server.Tests;

/// <summary>
/// <c>GET /v1/responses/{id}/input_items</c>: a chain's items in order (each earlier response's input, then its output,
/// then this one's input), newest first by default, paged by item ids as the official SDK pages them, ids kept where the
/// client gave them; bad parameters refused by name.
/// </summary>
public class ResponseInputItemsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private async Task<JsonElement> PostAsync(JsonObject body)
    {
        var (status, json) = await server.PostAsync("/v1/responses", body, TestContext.Current.CancellationToken);
        Assert.True(status == HttpStatusCode.OK, json.ToString());
        return json;
    }

    private static string Text(JsonElement item) => item.GetProperty("content")[0].GetProperty("text").GetString()!;

    /// <summary>Two turns: a string input, then a message with its own id and a function call's output after it.</summary>
    private async Task<(JsonElement First, JsonElement Second)> TwoTurnsAsync()
    {
        var first = await PostAsync(new JsonObject { ["input"] = "Tell me a story.", ["instructions"] = "Be brief.", ["max_output_tokens"] = 4, ["temperature"] = 0 });
        var second = await PostAsync(new JsonObject
        {
            ["input"] = new JsonArray(
                new JsonObject { ["id"] = "msg_mine", ["role"] = "user", ["content"] = "What next?" },
                new JsonObject { ["type"] = "function_call", ["call_id"] = "call_1", ["name"] = "look", ["arguments"] = "{}" },
                new JsonObject { ["type"] = "function_call_output", ["call_id"] = "call_1", ["output"] = "a tree" }),
            ["previous_response_id"] = first.GetProperty("id").GetString(), ["max_output_tokens"] = 4, ["temperature"] = 0,
        });
        return (first, second);
    }

    [Fact]
    public async Task AChainsItemsComeNewestFirstWithTheClientsIdsAndTheEarlierOutput()
    {
        var ct = TestContext.Current.CancellationToken;
        var (first, second) = await TwoTurnsAsync();
        var (status, page) = await server.GetAsync($"/v1/responses/{second.GetProperty("id").GetString()}/input_items", ct);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("list", page.GetProperty("object").GetString());
        Assert.False(page.GetProperty("has_more").GetBoolean());
        var items = page.GetProperty("data").EnumerateArray().ToArray();
        Assert.Equal(["function_call_output", "function_call", "message", "message", "message"], items.Select(i => i.GetProperty("type").GetString()));
        Assert.Equal("a tree", items[0].GetProperty("output").GetString());
        Assert.StartsWith("fco_", items[0].GetProperty("id").GetString());
        Assert.Equal("call_1", items[1].GetProperty("call_id").GetString());
        Assert.StartsWith("fc_", items[1].GetProperty("id").GetString());
        Assert.Equal("msg_mine", items[2].GetProperty("id").GetString());
        Assert.Equal(("user", "input_text", "What next?"), (items[2].GetProperty("role").GetString(), items[2].GetProperty("content")[0].GetProperty("type").GetString(), Text(items[2])));
        // The first response's output, as it was returned (same id, same text), and its input; never the instructions.
        var output = first.GetProperty("output")[0];
        Assert.Equal(output.GetProperty("id").GetString(), items[3].GetProperty("id").GetString());
        Assert.Equal(("assistant", Text(output)), (items[3].GetProperty("role").GetString(), Text(items[3])));
        Assert.Equal(("user", "Tell me a story."), (items[4].GetProperty("role").GetString(), Text(items[4])));
        Assert.StartsWith("msg_", items[4].GetProperty("id").GetString());
        Assert.Equal(items[0].GetProperty("id").GetString(), page.GetProperty("first_id").GetString());
        Assert.Equal(items[4].GetProperty("id").GetString(), page.GetProperty("last_id").GetString());

        // The first response lists its own input only; ascending order reverses the second's.
        var (_, firstPage) = await server.GetAsync($"/v1/responses/{first.GetProperty("id").GetString()}/input_items", ct);
        Assert.Equal(items[4].GetProperty("id").GetString(), firstPage.GetProperty("data").EnumerateArray().Single().GetProperty("id").GetString());
        var (_, ascending) = await server.GetAsync($"/v1/responses/{second.GetProperty("id").GetString()}/input_items?order=asc", ct);
        Assert.Equal(items.Reverse().Select(i => i.GetProperty("id").GetString()), ascending.GetProperty("data").EnumerateArray().Select(i => i.GetProperty("id").GetString()));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task PagesFollowOneAnotherByIdAsTheSdkReadsThem()
    {
        var ct = TestContext.Current.CancellationToken;
        var (_, second) = await TwoTurnsAsync();
        string id = second.GetProperty("id").GetString()!;
        var (_, whole) = await server.GetAsync($"/v1/responses/{id}/input_items?order=asc", ct);
        string[] all = [.. whole.GetProperty("data").EnumerateArray().Select(i => i.GetProperty("id").GetString()!)];

        // Two at a time, each page after the last one's last id.
        var paged = new List<string>();
        string? after = null;
        bool more = true;
        while (more)
        {
            var (status, page) = await server.GetAsync($"/v1/responses/{id}/input_items?order=asc&limit=2{(after == null ? "" : $"&after={after}")}", ct);
            Assert.Equal(HttpStatusCode.OK, status);
            paged.AddRange(page.GetProperty("data").EnumerateArray().Select(i => i.GetProperty("id").GetString()!));
            (after, more) = (page.GetProperty("last_id").GetString(), page.GetProperty("has_more").GetBoolean());
        }
        Assert.Equal(all, paged);
        var (_, before) = await server.GetAsync($"/v1/responses/{id}/input_items?order=asc&before={all[3]}", ct);
        Assert.Equal(all[..3], before.GetProperty("data").EnumerateArray().Select(i => i.GetProperty("id").GetString()!));

        // The official SDK pages through them the same way.
        var sdk = new ResponsesClient(new ApiKeyCredential("x"), new ResponsesClientOptions { Endpoint = new Uri(server.Server.BaseAddress, "v1") });
        var read = new List<string>();
        await foreach (var item in sdk.GetResponseInputItemsAsync(new ResponseItemCollectionOptions(id) { PageSizeLimit = 2, Order = ResponseItemCollectionOrder.Ascending }, ct))
            read.Add(item.Id);
        Assert.Equal(all, read);
        await server.WaitForNoBlocksAsync();
    }

    [Theory]
    [InlineData("?limit=0", "limit")]
    [InlineData("?limit=101", "limit")]
    [InlineData("?limit=two", "limit")]
    [InlineData("?order=newest", "order")]
    [InlineData("?after=msg_nothing", "after")]
    [InlineData("?include=message.input_image.image_url", "include")]
    [InlineData("?cursor=1", "cursor")]
    public async Task BadParametersAreRefusedByName(string query, string param)
    {
        var ct = TestContext.Current.CancellationToken;
        var first = await PostAsync(new JsonObject { ["input"] = "Hi.", ["max_output_tokens"] = 2 });
        var (status, body) = await server.GetAsync($"/v1/responses/{first.GetProperty("id").GetString()}/input_items{query}", ct);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
        var (missing, error) = await server.GetAsync("/v1/responses/resp_unknown/input_items", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("id", error.GetProperty("error").GetProperty("param").GetString());
        await server.WaitForNoBlocksAsync();
    }
}
