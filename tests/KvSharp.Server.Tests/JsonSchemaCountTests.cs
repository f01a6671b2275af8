using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a model that answers with a one-property object, its second choice after a newline a two-property one.</summary>
public sealed class OneOrTwoPropertiesFixture() : ScriptedModelFixture([JsonSchemaCountTests.OneProperty], secondChoice: JsonSchemaCountTests.TwoProperties);

/// <summary>
/// minProperties and maxProperties end to end over HTTP, on a GGUF whose model likes a reply with one property best:
/// held to a schema that asks for two, the reply is the best one that has two; counts no object can meet are refused
/// by name.
/// </summary>
public sealed class JsonSchemaCountTests(OneOrTwoPropertiesFixture fixture) : IClassFixture<OneOrTwoPropertiesFixture>
{
    public const string OneProperty = "{\"a\": 1}";
    public const string TwoProperties = "{\"a\": 1, \"b\": 2}";

    private static JsonObject Request(string counts) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Numbers, please." }),
        ["max_tokens"] = 8,
        ["response_format"] = new JsonObject
        {
            ["type"] = "json_schema",
            ["json_schema"] = new JsonObject
            {
                ["name"] = "numbers",
                ["schema"] = JsonNode.Parse("{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}" + counts + "}"),
            },
        },
    };

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(JsonObject body)
    {
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    private async Task<string> ContentAsync(string counts)
    {
        var (status, text) = await PostAsync(Request(counts));
        Assert.True(status == HttpStatusCode.OK, $"{status}: {text}");
        var choice = JsonDocument.Parse(text).RootElement.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        return choice.GetProperty("message").GetProperty("content").GetString()!;
    }

    [Fact]
    public async Task TheReplyHasAsManyPropertiesAsTheSchemaAsks()
    {
        Assert.Equal(OneProperty, await ContentAsync(""));
        Assert.Equal(OneProperty, await ContentAsync(", \"maxProperties\": 1"));
        Assert.Equal(TwoProperties, await ContentAsync(", \"minProperties\": 2"));
        Assert.Equal(TwoProperties, await ContentAsync(", \"minProperties\": 2, \"maxProperties\": 2"));
    }

    [Fact]
    public async Task CountsNoObjectCanMeetAreRefusedByName()
    {
        var (status, text) = await PostAsync(Request(", \"minProperties\": 3, \"maxProperties\": 2"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("minProperties 3 is above maxProperties 2", text);
    }
}
