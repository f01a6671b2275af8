using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>
/// The deprecated function-calling fields, response formats other than text, json_object and json_schema, audio output,
/// web search, and tools on a model whose chat template shows no tool-call syntax (this server's, plain) are refused with a 400 naming the
/// field (never silently ignored), streamed or not; what asks for none of them (null, an empty list, "none",
/// {"type": "text"}), and a schema, are accepted.
/// </summary>
public class RefusedFieldsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Tool = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}";

    private async Task<(HttpStatusCode Status, System.Text.Json.JsonElement Body)> ChatAsync(string field, string value, bool stream)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["max_tokens"] = 2,
            [field] = JsonNode.Parse(value),
        };
        if (stream) body["stream"] = true;
        using var response = await server.Client.PostAsync("/v1/chat/completions",
            new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        return (response.StatusCode, stream && response.IsSuccessStatusCode ? default : System.Text.Json.JsonDocument.Parse(text).RootElement.Clone());
    }

    [Theory]
    [InlineData("tools", "[" + Tool + "]")]
    [InlineData("functions", "[{\"name\": \"get_weather\", \"parameters\": {}}]")]
    [InlineData("function_call", "\"auto\"")]
    [InlineData("function_call", "{\"name\": \"get_weather\"}")]
    [InlineData("response_format", "\"json\"")]
    [InlineData("response_format", "{}")]
    [InlineData("modalities", "[\"text\", \"audio\"]")]
    [InlineData("audio", "{\"voice\": \"alloy\", \"format\": \"wav\"}")]
    [InlineData("web_search_options", "{}")]
    public async Task AreRefusedNamingTheField(string field, string value)
    {
        foreach (bool stream in new[] { false, true })
        {
            var (status, json) = await ChatAsync(field, value, stream);
            BadRequestTests.AssertError(HttpStatusCode.BadRequest, "unsupported_parameter", field, status, json);
            var error = json.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Contains(field, error.GetProperty("message").GetString());
        }
        Assert.Equal(0, server.Engine.Pool.UsedBlocks);
    }

    [Theory]
    [InlineData("tools", "[]")]
    [InlineData("tools", "null")]
    [InlineData("functions", "[]")]
    [InlineData("tool_choice", "\"none\"")]
    [InlineData("tool_choice", "null")]
    [InlineData("function_call", "\"none\"")]
    [InlineData("response_format", "{\"type\": \"text\"}")]
    [InlineData("response_format", "null")]
    [InlineData("modalities", "[\"text\"]")]
    [InlineData("modalities", "null")]
    [InlineData("audio", "null")]
    [InlineData("response_format", "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"w\", \"schema\": {\"type\": \"object\"}}}")]
    public async Task ThatAskForNothingOrForASchemaAreAccepted(string field, string value)
    {
        foreach (bool stream in new[] { false, true })
        {
            var (status, json) = await ChatAsync(field, value, stream);
            Assert.True(status == HttpStatusCode.OK, $"{field}: {value} (stream {stream}): {status} {json}");
        }
    }
}
