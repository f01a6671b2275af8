using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>POST /v1/chat/completions on the wire: OpenAI's chat shapes whole and streamed, n, stop, logprobs, content parts, roles.</summary>
public class ChatShapeTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static JsonObject Chat(string user, int maxTokens, string? system = null)
    {
        var messages = new JsonArray();
        if (system != null) messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        messages.Add(new JsonObject { ["role"] = "user", ["content"] = user });
        return new JsonObject { ["messages"] = messages, ["max_tokens"] = maxTokens, ["temperature"] = 0 };
    }

    private async Task<JsonElement> CompleteAsync(JsonObject body)
    {
        var (status, json) = await server.PostAsync("/v1/chat/completions", body, TestContext.Current.CancellationToken);
        Assert.True(status == System.Net.HttpStatusCode.OK, $"{status}: {json}");
        return json;
    }

    private async Task<List<JsonElement>> StreamAsync(JsonObject body)
    {
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return await ServerSentEventsReader.ReadAllAsync(response, TestContext.Current.CancellationToken);
    }

    private static string Content(JsonElement completion, int index = 0) =>
        ServerFixture.Choice(completion, index).GetProperty("message").GetProperty("content").GetString()!;

    private static IEnumerable<JsonElement> ChoicesOf(IEnumerable<JsonElement> chunks, int index) =>
        chunks.SelectMany(e => e.GetProperty("choices").EnumerateArray()).Where(c => c.GetProperty("index").GetInt32() == index);

    private static string StreamedContent(IEnumerable<JsonElement> chunks, int index = 0) => string.Concat(
        ChoicesOf(chunks, index).Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));

    /// <summary>JSON mode: the reply is (the start of) one JSON object, streamed or not, and nothing follows it.</summary>
    [Fact]
    public async Task JsonObjectModeRepliesWithTheStartOfAnObject()
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            ["max_tokens"] = 40,
            ["temperature"] = 0.9,
            ["seed"] = 11,
            ["response_format"] = new JsonObject { ["type"] = "json_object" },
        };
        var (status, json) = await server.PostAsync("/v1/chat/completions", body, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, status);
        string text = json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        var prefix = new KvSharp.Sampling.JsonPrefix(objectOnly: true);
        Assert.True(prefix.Feed(Encoding.UTF8.GetBytes(text)), text);
        Assert.Contains("{", text);
        string streamed = StreamedContent(await StreamAsync(body));
        Assert.Equal(text, streamed);
    }

    /// <summary>A JSON schema: the reply is the start of a value it allows, whole where generation stopped on its own.</summary>
    [Fact]
    public async Task JsonSchemaRepliesWithTheStartOfAnAllowedValue()
    {
        const string schema = "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}, \"n\": {\"type\": \"integer\"}}, \"required\": [\"ok\", \"n\"]}";
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            ["max_tokens"] = 60,
            ["temperature"] = 0.7,
            ["seed"] = 2,
            ["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "answer", ["schema"] = JsonNode.Parse(schema) } },
        };
        var json = await CompleteAsync(body);
        var choice = ServerFixture.Choice(json, 0);
        string text = choice.GetProperty("message").GetProperty("content").GetString()!;
        var status = KvSharp.Sampling.JsonSchemaPrefix.For(JsonDocument.Parse(schema).RootElement).Check(Encoding.UTF8.GetBytes(text));
        Assert.NotEqual(KvSharp.Sampling.JsonPrefixStatus.Invalid, status);
        if (choice.GetProperty("finish_reason").GetString() == "stop") Assert.Equal(KvSharp.Sampling.JsonPrefixStatus.Complete, status);
    }

    [Fact]
    public async Task WholeResponseHasOpenAisChatShape()
    {
        var json = await CompleteAsync(Chat("Hello there", 6));
        Assert.StartsWith("chatcmpl-", json.GetProperty("id").GetString());
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        Assert.Equal("stories260K.gguf", json.GetProperty("model").GetString());
        Assert.True(json.GetProperty("created").GetInt64() > 1_600_000_000);
        var choice = ServerFixture.Choice(json, 0);
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.String, choice.GetProperty("message").GetProperty("content").ValueKind);
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(6, usage.GetProperty("completion_tokens").GetInt32());
        // Other tests' prompts on this server share the template's opening; the last prompt token is always computed.
        Assert.InRange(usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32(), 0, usage.GetProperty("prompt_tokens").GetInt32() - 1);
    }

    [Fact]
    public async Task StreamSendsTheRoleFirstThenContentThenFinishUsageAndDone()
    {
        var body = Chat("Tell me a story", 25);
        var whole = await CompleteAsync(body.DeepClone().AsObject());
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var chunks = await StreamAsync(body);

        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.StartsWith("chatcmpl-", chunks[0].GetProperty("id").GetString());
        Assert.Equal(Content(whole), StreamedContent(chunks));
        var deltas = ChoicesOf(chunks, 0).Select(c => c.GetProperty("delta")).ToList();
        Assert.Equal("assistant", deltas[0].GetProperty("role").GetString());
        Assert.All(deltas.Skip(1), d => Assert.False(d.TryGetProperty("role", out _)));
        // Content chunks have no finish reason; the finish chunk has an empty delta; the usage chunk has no choices.
        var finish = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        Assert.Empty(finish.GetProperty("delta").EnumerateObject());
        Assert.All(chunks.Take(chunks.Count - 2), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        ServerFixture.AssertSameCounts(whole.GetProperty("usage"), chunks[^1].GetProperty("usage"));
    }

    [Fact]
    public async Task NChoicesEachStreamTheirOwnTextUnderTheirIndex()
    {
        JsonObject Sampled() { var b = Chat("Tell me about a bird", 30); b["temperature"] = 1.0; b["seed"] = 11; b["n"] = 3; return b; }
        var whole = await CompleteAsync(Sampled());
        Assert.Equal(3, whole.GetProperty("choices").GetArrayLength());
        // Every choice counts in the usage; the prompt once.
        Assert.InRange(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 3, 3 * 30);
        var chunks = await StreamAsync(Sampled());
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Content(whole, i), StreamedContent(chunks, i));
            Assert.Equal("assistant", ChoicesOf(chunks, i).First().GetProperty("delta").GetProperty("role").GetString());
            Assert.Single(ChoicesOf(chunks, i), c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String);
        }
        Assert.True(Enumerable.Range(0, 3).Select(i => Content(whole, i)).Distinct().Count() > 1, "three samples were all the same");
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task StopEndsTheReplyBeforeTheStopString()
    {
        string full = Content(await CompleteAsync(Chat("Once there was a girl", 60)));
        string[] words = full.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(words.Length > 4, full);
        string stop = " " + words[3];
        var body = Chat("Once there was a girl", 60);
        body["stop"] = stop;
        var json = await CompleteAsync(body);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], Content(json));
        Assert.Equal("stop", ServerFixture.Choice(json, 0).GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task LogprobsComeInTheChatShapeOnePerToken()
    {
        var body = Chat("Tell me a story", 12);
        body["logprobs"] = true;
        body["top_logprobs"] = 3;
        var json = await CompleteAsync(body);
        var content = ServerFixture.Choice(json, 0).GetProperty("logprobs").GetProperty("content").EnumerateArray().ToArray();
        Assert.Equal(json.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), content.Length);
        var bytes = new List<byte>();
        foreach (var token in content)
        {
            var top = token.GetProperty("top_logprobs").EnumerateArray().ToArray();
            Assert.Equal(3, top.Length);
            // Greedy: the sampled token is the likeliest one.
            Assert.Equal(top[0].GetProperty("token").GetString(), token.GetProperty("token").GetString());
            Assert.Equal(top[0].GetProperty("logprob").GetSingle(), token.GetProperty("logprob").GetSingle());
            Assert.True(token.GetProperty("logprob").GetSingle() <= 0);
            Assert.True(top[0].GetProperty("logprob").GetSingle() >= top[1].GetProperty("logprob").GetSingle());
            bytes.AddRange(token.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()));
        }
        Assert.Equal(Content(json), Encoding.UTF8.GetString(bytes.ToArray()));

        // logprobs alone: the sampled tokens' only; streamed: the same entries, spread over the chunks.
        body.Remove("top_logprobs");
        var stream = await StreamAsync(body);
        var streamed = ChoicesOf(stream, 0).Where(c => c.GetProperty("logprobs").ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("logprobs").GetProperty("content").EnumerateArray()).ToArray();
        Assert.Equal(content.Select(t => t.GetProperty("token").GetString()), streamed.Select(t => t.GetProperty("token").GetString()));
        Assert.All(streamed, t => Assert.Empty(t.GetProperty("top_logprobs").EnumerateArray()));
    }

    [Fact]
    public async Task TextPartsDeveloperRoleAndMaxCompletionTokensAreRead()
    {
        string expected = Content(await CompleteAsync(Chat("Tell me a story about a frog", 10, system: "Be kind.")));
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "developer", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "Be kind." }) },
                new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "Tell me a story about a frog" }) }),
            ["max_completion_tokens"] = 10,
            ["temperature"] = 0,
        };
        var json = await CompleteAsync(body);
        Assert.Equal(expected, Content(json));
        Assert.Equal(10, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task ApplyTemplateReturnsThePlainFallbacksPrompt()
    {
        var ct = TestContext.Current.CancellationToken;
        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You tell stories." },
            new JsonObject { ["role"] = "user", ["content"] = "Hi" });
        var (status, json) = await server.PostAsync("/apply-template", new JsonObject { ["messages"] = messages.DeepClone() }, ct);
        Assert.Equal(System.Net.HttpStatusCode.OK, status);
        Assert.Equal("You tell stories.\n\nUser: Hi\nAssistant:", json.GetProperty("prompt").GetString());
        Assert.Single(json.EnumerateObject());
        (_, json) = await server.PostAsync("/apply-template", new JsonObject { ["messages"] = messages.DeepClone(), ["add_generation_prompt"] = false }, ct);
        Assert.Equal("You tell stories.\n\nUser: Hi\n", json.GetProperty("prompt").GetString());
    }
}
