using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Templates;

namespace KvSharp.Server.Tests;

/// <summary>Llama 3's real 128,256-token vocabulary under Llama 3.1's real chat template, with its tool calls.</summary>
public sealed class Llama31ToolServer : Llama3VocabularyServer
{
    // The template's tool preamble alone is some 300 tokens.
    protected override KvSharp.Engine.EngineOptions Engine => new() { ContextLength = 1024 };

    protected override ChatTemplate? Template
    {
        get
        {
            using var data = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Templates", "jinja2-tool-templates.json")));
            return ChatTemplate.Parse(data.RootElement.GetProperty("templates").GetProperty("meta-llama-Llama-3.1-8B-Instruct.jinja").GetString()!, "llama-3.1");
        }
    }
}

/// <summary>
/// A forced tool call over a real byte-level vocabulary (pieces of several characters, characters split across
/// pieces) and a real template: the random-weight model would write anything, so every argument comes from the
/// constraint, and the call reads back as one the tool's schema allows.
/// </summary>
public sealed class RealVocabularyToolCallTests(Llama31ToolServer fixture) : IClassFixture<Llama31ToolServer>
{
    private const string Book = """
        {"type": "function", "function": {"name": "book", "parameters": {"type": "object", "properties": {
          "day": {"type": "string", "format": "date"}, "guests": {"type": "integer", "minimum": 1, "maximum": 8},
          "zone": {"enum": ["CET", "UTC"]}, "code": {"type": "string", "pattern": "^[A-Z]{2}\\d{3}$"}},
          "required": ["day", "guests", "zone", "code"], "additionalProperties": false}}}
        """;
    private const string Ping = """{"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}""";

    [Theory]
    [InlineData("{\"type\": \"function\", \"function\": {\"name\": \"book\"}}")]
    [InlineData("\"required\"")]
    public async Task TheCallIsOneTheSchemaAllows(string choice)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Book a table." }),
            ["tools"] = new JsonArray(JsonNode.Parse(Book), JsonNode.Parse(Ping)),
            ["tool_choice"] = JsonNode.Parse(choice),
            ["max_tokens"] = 200,
            ["temperature"] = 0.8,
            ["seed"] = 7,
        };
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var reply = JsonDocument.Parse(text).RootElement.GetProperty("choices")[0];
        Assert.True(reply.GetProperty("finish_reason").GetString() == "tool_calls", text);
        var function = Assert.Single(reply.GetProperty("message").GetProperty("tool_calls").EnumerateArray()).GetProperty("function");
        using var arguments = JsonDocument.Parse(function.GetProperty("arguments").GetString()!);
        var a = arguments.RootElement;
        if (function.GetProperty("name").GetString() == "ping")
        {
            Assert.Equal("\"required\"", choice);
            Assert.True(a.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
            return;
        }
        Assert.Equal("book", function.GetProperty("name").GetString());
        Assert.True(DateOnly.TryParseExact(a.GetProperty("day").GetString(), "yyyy-MM-dd", out _), a.ToString());
        Assert.InRange(a.GetProperty("guests").GetInt32(), 1, 8);
        Assert.Contains(a.GetProperty("zone").GetString(), new[] { "CET", "UTC" });
        Assert.Matches("^[A-Z]{2}[0-9]{3}$", a.GetProperty("code").GetString());
        Assert.Equal(4, a.EnumerateObject().Count());
    }
    /// <summary>
    /// Streamed with tools and sampled freely, the random-weight model writes byte-level pieces, characters split across
    /// tokens and now and then a control token the text does not show: whatever it writes, the deltas add up to what
    /// the same request (same seed) gets whole, and the finish is the same.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task AStreamedReplyAddsUpToTheWholeOne(int seed)
    {
        var ct = TestContext.Current.CancellationToken;
        JsonObject Body(bool stream) => new()
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Book a table." }),
            ["tools"] = new JsonArray(JsonNode.Parse(Book), JsonNode.Parse(Ping)),
            ["max_tokens"] = 48,
            ["temperature"] = 1.0,
            ["seed"] = seed,
            ["stream"] = stream,
        };
        using var whole = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(Body(false).ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var choice = JsonDocument.Parse(await whole.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0];
        string content = choice.GetProperty("message").GetProperty("content") is { ValueKind: JsonValueKind.String } c ? c.GetString()! : "";
        Assert.True(content.Length > 20, $"these seeds write text: \"{content}\"");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Body(true).ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var deltas = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        string streamed = string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty("content", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : ""));
        Assert.True(streamed.EndsWith(content, StringComparison.Ordinal) && string.IsNullOrWhiteSpace(streamed[..^content.Length]),
            $"streamed \"{streamed}\", whole \"{content}\"");
        Assert.Equal(choice.GetProperty("finish_reason").GetString(), deltas[^1].GetProperty("finish_reason").GetString());
    }
}
