using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Server.Tests;

/// <summary>
/// vLLM's guided_json and llama-server's json_schema hold a completion, or a chat reply, to a value of the schema,
/// exactly as the library's JsonSchema format does for the same prompt (the schema an object or its text);
/// guided_regex and guided_choice to a text the regular expression matches whole, or one of the choices.
/// </summary>
public class GuidedFieldsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private const string Prompt = "Once upon a time";
    private const string Schema = "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 12}, \"age\": {\"type\": \"integer\"}}, \"required\": [\"name\", \"age\"]}";

    [Theory]
    [InlineData("guided_json", false)]
    [InlineData("guided_json", true)]
    [InlineData("json_schema", false)]
    public async Task ACompletionIsAValueOfTheSchemaAsTheLibraryWritesIt(string field, bool asText)
    {
        var ct = TestContext.Current.CancellationToken;
        using var schema = JsonDocument.Parse(Schema);
        var options = new GenerationOptions { MaxTokens = 60, Format = ResponseFormat.JsonSchema, Schema = JsonSchemaPrefix.For(schema.RootElement) };
        var expected = server.Reference(Prompt, options);
        var body = new JsonObject { ["prompt"] = Prompt, ["max_tokens"] = 60, ["temperature"] = 0, [field] = asText ? JsonValue.Create(Schema) : JsonNode.Parse(Schema) };
        var json = await server.CompleteAsync(body, ct);
        string text = ServerFixture.Text(json);
        Assert.Equal(expected.Text, text);
        Assert.StartsWith("{", text.TrimStart());
        if (expected.Stats.FinishReason == FinishReason.Stop)
        {
            var value = JsonDocument.Parse(text).RootElement;
            Assert.Equal(JsonValueKind.String, value.GetProperty("name").ValueKind);
            Assert.Equal(JsonValueKind.Number, value.GetProperty("age").ValueKind);
        }
        body.Remove(field);
        Assert.NotEqual(text, ServerFixture.Text(await server.CompleteAsync(body, ct)));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AChatReplyIsHeldByGuidedJsonAsByResponseFormat()
    {
        var ct = TestContext.Current.CancellationToken;
        JsonObject Body() => new() { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me about Lily." }), ["max_tokens"] = 60, ["temperature"] = 0 };
        var guided = Body();
        guided["guided_json"] = JsonNode.Parse(Schema);
        var formatted = Body();
        formatted["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "person", ["schema"] = JsonNode.Parse(Schema) } };
        var (s1, a) = await server.PostAsync("/v1/chat/completions", guided, ct);
        var (s2, b) = await server.PostAsync("/v1/chat/completions", formatted, ct);
        Assert.Equal((System.Net.HttpStatusCode.OK, System.Net.HttpStatusCode.OK), (s1, s2));
        string Content(JsonElement r) => r.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.Equal(Content(b), Content(a));
        Assert.StartsWith("{", Content(a).TrimStart());
    }

    [Fact]
    public async Task GuidedChoiceAndRegexHoldACompletionAsTheLibraryDoes()
    {
        var ct = TestContext.Current.CancellationToken;
        string[] choices = ["happy", "sad", "a big red ball"];
        var choice = await server.CompleteAsync(new JsonObject
        {
            ["prompt"] = "Lily was", ["max_tokens"] = 20, ["temperature"] = 0, ["guided_choice"] = new JsonArray([.. choices.Select(c => JsonValue.Create(c))]),
        }, ct);
        string picked = ServerFixture.Text(choice);
        Assert.Contains(picked, choices);
        Assert.Equal(server.Reference("Lily was", new GenerationOptions
            { MaxTokens = 20, Format = ResponseFormat.Pattern, Pattern = PatternPrefix.OneOf(choices, "c") }).Text, picked);

        const string Regex = "[A-Z][a-z]+ (is|was) [0-9]{1,2} years old\\.";
        var regex = await server.CompleteAsync(new JsonObject { ["prompt"] = Prompt, ["max_tokens"] = 40, ["temperature"] = 0, ["guided_regex"] = Regex }, ct);
        Assert.Equal(server.Reference(Prompt, new GenerationOptions
            { MaxTokens = 40, Format = ResponseFormat.Pattern, Pattern = PatternPrefix.WholeText(Regex, "r") }).Text, ServerFixture.Text(regex));
        Assert.True(PatternPrefix.WholeText(Regex, "r").Viable(ServerFixture.Text(regex)));
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task AChatReplyIsOneOfTheGuidedChoices()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "How was Lily?" }), ["max_tokens"] = 20, ["temperature"] = 0.9, ["seed"] = 4,
            ["guided_choice"] = new JsonArray("happy", "sad"),
        };
        var (status, json) = await server.PostAsync("/v1/chat/completions", body, ct);
        Assert.True(status == System.Net.HttpStatusCode.OK, json.ToString());
        Assert.Contains(json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), new[] { "happy", "sad" });
    }
}
